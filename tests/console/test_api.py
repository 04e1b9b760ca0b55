"""The JSON API against a real SQLite store (and PostgreSQL for the actions): warnings and their
actions with audit rows, officer scoping (404 and filtered lists), sites, series, quality."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.store import Action, Notification, Store
from config import example_dir, load_config
from console.app import create_app
from console.users import UserService
from tests.alerts.db import BACKENDS, fresh_database
from tests.console.conftest import PASSWORD, USERS, T0, Clock, login, raise_warning
from formats.health import SensorHealth
from formats.readings import Readings


@pytest.fixture
def warnings_(console_store: Store, console_config) -> dict[str, str]:
    """A red warning at CH-001 and a yellow one at TD-001."""
    return {
        "ch": raise_warning(console_store, console_config, "CH-001", "GT-101", "combustible_gas"),
        "td": raise_warning(console_store, console_config, "TD-001", "PZ-01", "phreatic_depth",
                            level="yellow", raised_ts=1_795_000_100_000),
    }


@pytest.fixture(params=BACKENDS)
def any_backend_client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    for url in fresh_database(request.param, tmp_path):
        config = load_config(example_dir(), env={"HAZWATCH_DATABASE_URL": url})
        store = Store(url)
        for name, (role, enterprise) in USERS.items():
            UserService(store).add(name, PASSWORD, role, enterprise=enterprise)
        try:
            with TestClient(create_app(config, store, clock=Clock(), pages=False)) as c:
                yield c, store
        finally:
            store.engine.dispose()


def test_actions_write_audit_rows_with_the_user(any_backend_client) -> None:
    client, store = any_backend_client
    from config import example_dir, load_config
    config = load_config(example_dir(), env={"HAZWATCH_DATABASE_URL": store.url})
    eid = raise_warning(store, config, "CH-001", "GT-101", "combustible_gas")
    login(client, "officer_ch")
    r = client.post(f"/api/warnings/{eid}/ack")
    assert r.status_code == 200, r.text
    w = r.json()
    assert w["state"] == "acknowledged" and w["acknowledged_by"] == "officer_ch"
    assert client.post(f"/api/warnings/{eid}/ack").status_code == 409  # already acknowledged
    r = client.post(f"/api/warnings/{eid}/dispose", json={"category": "on_site_check", "text": "现场核查无泄漏"})
    assert r.status_code == 200
    assert client.post(f"/api/warnings/{eid}/dispose",
                       json={"category": "nonsense", "text": "x"}).status_code == 422
    assert client.post(f"/api/warnings/{eid}/close", json={}).status_code == 409  # not cleared, no reason
    r = client.post(f"/api/warnings/{eid}/close", json={"reason": "sensor replaced"})
    assert r.status_code == 200 and r.json()["state"] == "closed" and r.json()["closed_by"] == "officer_ch"
    detail = client.get(f"/api/warnings/{eid}").json()
    assert [(a["action"], a["actor"]) for a in detail["actions"]] == [
        ("acknowledge", "officer_ch"), ("dispose", "officer_ch"), ("close", "officer_ch")]
    assert detail["changes"][0]["level"] == "red"
    with store.session() as s:
        rows = s.execute(select(Action.action, Action.actor, Action.episode_id)
                         .where(Action.episode_id == eid).order_by(Action.id)).all()
    assert [(a, b) for a, b, _ in rows] == [("acknowledge", "officer_ch"), ("dispose", "officer_ch"),
                                           ("close", "officer_ch")]
    assert client.post("/api/warnings/nope/ack").status_code == 404


def test_warnings_sorted_most_severe_then_newest(client: TestClient, users, warnings_,
                                                 console_store, console_config) -> None:
    newer_yellow = raise_warning(console_store, console_config, "CH-001", "GT-102", "toxic_gas",
                                 level="yellow", raised_ts=1_795_000_200_000, now=T0.replace(hour=3))
    login(client, "op")
    ws = client.get("/api/warnings").json()
    assert [w["id"] for w in ws] == [warnings_["ch"], newer_yellow, warnings_["td"]]
    w = ws[0]
    assert w["site_name"] == "临港石化储罐区" and w["kind"] == "chemical" and w["level"] == "red"
    assert w["raised_at"].endswith("Z") and w["escalation_started"] is True
    assert client.get("/api/warnings?lang=en").json()[0]["site_name"] == "Lingang Petrochemical tank farm"
    assert [w["id"] for w in client.get("/api/warnings?level=yellow&site=TD-001").json()] == [warnings_["td"]]
    assert client.get("/api/warnings?kind=tailings").json()[0]["site"] == "TD-001"
    assert client.get("/api/warnings?state=closed").json() == []


def test_officer_sees_only_own_enterprise(client: TestClient, users, warnings_) -> None:
    login(client, "officer_ch")
    assert [s["id"] for s in client.get("/api/sites").json()] == ["CH-001"]
    assert [w["id"] for w in client.get("/api/warnings").json()] == [warnings_["ch"]]
    assert client.get("/api/sites/TD-001").status_code == 404
    assert client.get("/api/sites/TD-001/series?sensor=PZ-01").status_code == 404
    assert client.get("/api/sites/NOPE").status_code == 404
    other = warnings_["td"]
    assert client.get(f"/api/warnings/{other}").status_code == 404
    assert client.post(f"/api/warnings/{other}/ack").status_code == 404
    assert client.get(f"/api/warnings/{other}").json()["detail"] == client.get(
        "/api/warnings/does-not-exist").json()["detail"]  # the same answer as for nothing at all
    m = client.get("/api/map").json()
    assert [s["id"] for s in m["sites"]] == ["CH-001"]
    assert {z["id"] for z in m["zones"]} <= {"Z-LINGANG-EAST", "Z-LINGANG-SCHOOL"}
    q = client.get("/api/quality").json()
    assert {s["site"] for s in q["sensors"]} == {"CH-001"}
    assert [r["enterprise"] for r in q["online_rate"]] == ["临港石化有限公司"]
    # officers may not silence; their audit view holds only their own sites' actions
    body = {"matcher": {"site": "CH-001"}, "ends_at": "2026-12-01T05:00:00Z", "reason": "x"}
    assert client.post("/api/silences", json=body).status_code == 403
    client.post(f"/api/warnings/{warnings_['ch']}/ack")
    audit = client.get("/api/audit").json()
    assert audit and {a["episode_id"] for a in audit} == {warnings_["ch"]}


def test_operator_sees_all_and_sites_carry_levels(client: TestClient, users, warnings_,
                                                  console_app, clock: Clock) -> None:
    login(client, "op")
    sites = {s["id"]: s for s in client.get("/api/sites").json()}
    assert set(sites) == {s.id for s in console_app.state.console.config.sites} and len(sites) == 16  # the city
    assert sites["CH-001"]["level"] == "red" and sites["CH-001"]["active_warnings"] == 1
    assert sites["TD-001"]["level"] == "yellow" and sites["RG-001"]["level"] == "normal"
    assert sites["CH-001"]["offline"] is False
    # live readings and health reach the site view
    live = console_app.state.console.live
    now = clock.ms()
    live.ingest_readings(Readings(site="CH-001", sensor=["GT-101", "GT-102"], ts=[now - 5000, now],
                                  v=[12.5, 3.0], q=[0, 0]))
    for sensor in ("GT-101", "GT-102", "LT-201"):
        live.ingest_health(SensorHealth(site="CH-001", subject=f"CH-001/{sensor}", sensor=sensor, check="offline",
                                        state="fault", ts=now, detected_at=now,
                                        detail={"active": ["offline"], "episode_ts": now}))
    detail = client.get("/api/sites/CH-001").json()
    gt = {s["id"]: s for s in detail["sensors"]}["GT-101"]
    assert gt["value"] == 12.5 and gt["ts_ms"] == now - 5000 and gt["status"] == "offline"
    assert gt["thresholds"][0] == {"rule": "combustible_gas", "direction": "high", "level": "yellow", "value": 10.0}
    assert detail["offline"] is True and len(detail["history"]) == 1
    series = client.get("/api/sites/CH-001/series?sensor=GT-101&hours=1").json()
    assert series["points"] == [[now - 5000, 12.5]] and series["unit"] == "%LEL"
    assert client.get("/api/sites/CH-001/series?sensor=NOPE").status_code == 404
    assert client.get("/api/sites/CH-001/series?sensor=GT-101&hours=0").status_code == 422


def test_map_has_bounds_and_circle_zones(client: TestClient, users) -> None:
    login(client, "op")
    m = client.get("/api/map").json()
    lon0, lat0, lon1, lat1 = m["bounds"]
    assert lon0 < lon1 and lat0 < lat1
    school = next(z for z in m["zones"] if z["id"] == "Z-LINGANG-SCHOOL")
    assert len(school["polygon"]) == 49 and school["polygon"][0] == school["polygon"][-1]
    for s in m["sites"]:
        assert lon0 <= s["lon"] <= lon1 and lat0 <= s["lat"] <= lat1


def test_silences_create_list_end_audited(client: TestClient, users, console_store) -> None:
    login(client, "op")
    body = {"kind": "maintenance", "matcher": {"site": "TD-001", "max_level": "red"},
            "ends_at": "2026-12-01T06:00:00Z", "reason": "浸润线传感器校准"}
    r = client.post("/api/silences", json=body)
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["active"] is True and s["created_by"] == "op" and s["kind"] == "maintenance"
    bad = {**body, "matcher": {"max_level": "red"}}
    assert client.post("/api/silences", json=bad).status_code == 422
    assert [x["id"] for x in client.get("/api/silences").json()] == [s["id"]]
    r = client.post(f"/api/silences/{s['id']}/end")
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.post(f"/api/silences/{s['id']}/end").status_code == 409
    assert client.post("/api/silences/99999/end").status_code == 404
    assert client.get("/api/silences").json() == []
    assert len(client.get("/api/silences?include_ended=true").json()) == 1
    with console_store.session() as sess:
        rows = sess.execute(select(Action.action, Action.actor).where(Action.silence_id == s["id"])).all()
    assert sorted(rows) == [("silence_create", "op"), ("silence_end", "op")]


#: matcher -> the reason it is created with; the reason says who may read it
SILENCES = [
    ({"site": "CH-001"}, "ch: 气体探测器更换"),
    ({"subject": "CH-001/*", "max_level": "red"}, "ch: 全厂检修"),
    ({"site": "TD-001", "rule": "phreatic_depth"}, "td: 浸润线传感器校准"),
    ({"subject": "TD-001/PZ-01"}, "td: 测压管清淤"),
    ({"rule": "combustible_gas"}, "no site: 全市可燃气体规则复核"),
    ({"subject": "*", "rule": "rain_1h"}, "no site: 雨量计统一标定"),
    ({"subject": "CH-00*"}, "no site: a prefix that may reach other enterprises' sites"),
]


@pytest.mark.parametrize(("user", "seen"), [
    ("op", "ch td no site"), ("admin", "ch td no site"), ("officer_ch", "ch"), ("officer_td", "td")])
@pytest.mark.parametrize("include_ended", [False, True])
def test_officers_see_only_silences_naming_their_own_sites(client: TestClient, users, user: str, seen: str,
                                                           include_ended: bool) -> None:
    login(client, "op")
    for matcher, reason in SILENCES:
        r = client.post("/api/silences", json={"matcher": matcher, "ends_at": "2026-12-01T06:00:00Z",
                                               "reason": reason})
        assert r.status_code == 201, r.text
    if include_ended:  # an ended one is hidden the same way
        for s in client.get("/api/silences").json():
            assert client.post(f"/api/silences/{s['id']}/end").status_code == 200
    client.post("/api/logout")
    client.cookies.clear()
    login(client, user)

    r = client.get(f"/api/silences?include_ended={str(include_ended).lower()}")

    assert r.status_code == 200
    expected = [reason for _, reason in SILENCES if reason.startswith(tuple(seen.split(" ")))]
    assert [s["reason"] for s in r.json()] == expected
    hidden = [reason for _, reason in SILENCES if reason not in expected]
    assert not [h for h in hidden if h in r.text], "nothing of a hidden silence, its reason least of all"


def test_notifications_newest_first_and_failed_filter(client: TestClient, users, warnings_,
                                                      console_store) -> None:
    with console_store.session.begin() as s:
        for i, (status, delivery, site) in enumerate([("sent", "delivered", "CH-001"),
                                                      ("sent", "undelivered", "CH-001"),
                                                      ("failed", None, "TD-001")]):
            s.add(Notification(key=f"k{i}", channel="sms", episode=warnings_["ch"], site=site,
                               kind="raised", level="red", recipient=f"+861380000000{i}", name="n",
                               role="operator", language="zh-CN", event="{}", status=status,
                               delivery_status=delivery, created_at=T0.replace(minute=i)))
    login(client, "op")
    ns = client.get("/api/notifications").json()
    assert [n["recipient"][-1] for n in ns] == ["2", "1", "0"]
    assert [n["failed"] for n in ns] == [True, True, False]
    assert len(client.get("/api/notifications?failed=true").json()) == 2
    assert len(client.get("/api/notifications?site=TD-001").json()) == 1
    client.post("/api/logout")
    client.cookies.clear()
    login(client, "officer_ch")
    assert {n["site"] for n in client.get("/api/notifications").json()} == {"CH-001"}


def test_unauthenticated_api_is_401(client: TestClient) -> None:
    for path in ("/api/me", "/api/sites", "/api/map", "/api/warnings", "/api/quality",
                 "/api/notifications", "/api/silences", "/api/audit", "/api/users", "/api/config",
                 "/api/events"):
        assert client.get(path).status_code == 401, path


def test_limit_applies_after_the_severity_sort(client: TestClient, users, console_store,
                                               console_config) -> None:
    red = raise_warning(console_store, console_config, "CH-001", "GT-101", "combustible_gas",
                        level="red", raised_ts=1_795_000_000_000)
    for i in range(3):
        raise_warning(console_store, console_config, "CH-001", "GT-102", "toxic_gas", level="blue",
                      raised_ts=1_795_000_100_000 + i * 1000, now=T0.replace(minute=i + 1))
    login(client, "op")
    ws = client.get("/api/warnings", params={"limit": 2}).json()
    assert [w["level"] for w in ws] == ["red", "blue"] and ws[0]["id"] == red
    assert ws[1]["raised_at"] == max(w["raised_at"] for w in client.get("/api/warnings").json()[1:])


def test_escalation_started_only_while_the_chain_runs(client: TestClient, users, warnings_) -> None:
    login(client, "op")
    eid = warnings_["ch"]
    assert client.get(f"/api/warnings/{eid}").json()["escalation_started"] is True
    w = client.post(f"/api/warnings/{eid}/ack").json()
    assert w["state"] == "acknowledged" and w["escalation_since"] is not None
    assert w["escalation_started"] is False  # acknowledgement stops the 叫应 chain


@pytest.mark.parametrize("ends_at", ["9999-12-31T23:00:00-05:00", "2101-01-01T00:00:00Z",
                                     "1999-12-31T23:59:59Z"])
def test_silence_times_out_of_range_are_422(client: TestClient, users, ends_at: str) -> None:
    login(client, "op")
    body = {"matcher": {"site": "CH-001"}, "ends_at": ends_at, "reason": "x"}
    assert client.post("/api/silences", json=body).status_code == 422
    early = {**body, "starts_at": "0001-01-01T00:00:00+05:00", "ends_at": "2026-12-01T05:00:00Z"}
    assert client.post("/api/silences", json=early).status_code == 422


def test_nul_characters_are_422(client: TestClient, users, warnings_) -> None:
    csrf = client.get("/api/csrf").json()["csrf"]
    r = client.post("/api/login", json={"username": "op\x00", "password": "x"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
    login(client, "admin")
    eid = warnings_["ch"]
    for path, body in [
            (f"/api/warnings/{eid}/dispose", {"category": "other", "text": "a\x00b"}),
            (f"/api/warnings/{eid}/close", {"reason": "a\x00b"}),
            ("/api/silences", {"matcher": {"site": "CH-001"}, "ends_at": "2026-12-01T05:00:00Z",
                               "reason": "a\x00b"}),
            ("/api/silences", {"matcher": {"site": "CH\x00"}, "ends_at": "2026-12-01T05:00:00Z",
                               "reason": "x"}),
            ("/api/users", {"username": "n\x00", "password": "a good password", "role": "operator"})]:
        assert client.post(path, json=body).status_code == 422, (path, body)
    assert client.get(f"/api/warnings/{eid}").json()["actions"] == []


def test_a_failing_channel_shows_to_operators_only(client: TestClient, console_store: Store,
                                                    console_config, clock: Clock, users) -> None:
    from alerts.channel_alarm import ChannelAlarms

    alarms = ChannelAlarms(console_store, console_config, clock)
    login(client, "op")
    assert client.get("/api/channels/alarms").json() == []
    for _ in range(console_config.settings.notify.channel_alarm.after_failures):
        alarms.failed("sms", "20503 HTTP 503: Service Unavailable")
    with console_store.session.begin() as s:  # a warning SMS waiting for the provider
        s.add(Notification(key="k1", channel="sms", episode="e1", site="CH-001", kind="raised", level="red",
                           recipient="+8613800000001", role="operator", language="zh-CN", event="{}",
                           status="pending", attempts=5))

    [alarm] = client.get("/api/channels/alarms").json()
    assert alarm["channel"] == "sms" and alarm["failures"] == 5 and "503" in alarm["last_error"]
    assert alarm["waiting"] == 1
    client.post("/api/logout")
    login(client, "officer_ch")
    assert client.get("/api/channels/alarms").json() == []

    alarms.succeeded("sms")
    client.post("/api/logout")
    login(client, "admin")
    assert client.get("/api/channels/alarms").json() == []
