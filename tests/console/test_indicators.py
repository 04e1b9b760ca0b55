"""The indicators API (``/api/indicators/coverage`` and ``/safety``) and page, on the example
configuration with episodes and outbox rows recorded in its store: what each role sees, the
coverage of a red episode from its delivery receipts, the follow-up list, the ranking."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from alerts.store import Notification, Store
from config.models import Config
from console.app import create_app
from tests.console.conftest import CH_ENTERPRISE, T0, TD_ENTERPRISE, Clock, login, raise_warning


def subscribers(config: Config, site: str) -> dict[str, list[str]]:
    """zone -> the phones of its subscribers, for the zones ``site`` affects."""
    return {z: [s.phone for s in config.zone(z).subscribers] for z in config.affected_zones(site)}


def record(store: Store, eid: str, site: str, recipient: str, *, channel: str = "sms", kind: str = "raised",
           status: str = "sent", delivery: str | None = None, provider_id: str | None = None,
           error: str | None = None) -> None:
    with store.session.begin() as s:
        s.add(Notification(key=f"{eid}|{channel}|{recipient}", channel=channel, episode=eid, site=site, kind=kind,
                           level="red", recipient=recipient, role="resident", language="zh-CN", event="{}",
                           status=status, delivery_status=delivery, provider_id=provider_id, error=error,
                           created_at=T0, not_before=T0))


@pytest.fixture
def red_ch(console_config: Config, console_store: Store, users: object) -> tuple[str, dict[str, list[str]]]:
    """A red episode at CH-001: every subscriber of its first zone delivered but the last (failed),
    the CAP Alert sent there; nothing sent to the other zones."""
    eid = raise_warning(console_store, console_config, "CH-001", "GT-101", "combustible_gas", level="red",
                        now=T0 - dt.timedelta(hours=1))
    zones = subscribers(console_config, "CH-001")
    first, phones = next((z, p) for z, p in zones.items() if len(p) >= 2)
    for phone in phones[:-1]:
        record(console_store, eid, "CH-001", phone, delivery="delivered", provider_id=f"SM{phone}")
    record(console_store, eid, "CH-001", phones[-1], status="failed", error="21211 invalid number")
    record(console_store, eid, "CH-001", first, channel="cap", kind="cap-alert", provider_id="CAP-1")
    return eid, zones


def test_coverage_of_a_red_episode(client: TestClient, red_ch: tuple[str, dict[str, list[str]]],
                                   console_config: Config) -> None:
    eid, zones = red_ch
    login(client, "op")
    r = client.get("/api/indicators/coverage")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["target"] == 0.9
    (episode,) = data["episodes"]
    assert (episode["episode"], episode["site"], episode["enterprise"]) == (eid, "CH-001", CH_ENTERPRISE)
    assert [z["zone"] for z in episode["zones"]] == list(zones)
    first = episode["zones"][0]
    phones = zones[first["zone"]]
    assert (first["subscribers"], first["delivered"]) == (len(phones), len(phones) - 1)
    assert first["share"] == round((len(phones) - 1) / len(phones), 4) and first["met"] is False
    assert first["loudspeakers"] == {"state": "sent", "identifier": "CAP-1", "sounded": True}
    assert [(p["phone"], p["outcome"], p["reason"]) for p in first["not_reached"]] == [
        (phones[-1], "failed", "21211 invalid number")]
    for z in episode["zones"][1:]:  # nothing sent there: everyone to phone, no broadcast
        assert z["delivered"] == 0 and z["loudspeakers"]["state"] == "none"
        assert {p["phone"] for p in z["not_reached"]} == set(zones[z["zone"]])
        assert {p["outcome"] for p in z["not_reached"]} <= {"not_sent"}


def test_coverage_is_scoped_to_the_officers_sites(client: TestClient, red_ch: tuple[str, dict[str, list[str]]],
                                                 console_store: Store, console_config: Config) -> None:
    td = raise_warning(console_store, console_config, "TD-001", "PZ-01", "phreatic_depth", level="red",
                       now=T0 - dt.timedelta(hours=2), value=4.0)
    login(client, "op")
    assert {e["episode"] for e in client.get("/api/indicators/coverage").json()["episodes"]} == {red_ch[0], td}
    login(client, "officer_ch")
    assert [e["episode"] for e in client.get("/api/indicators/coverage").json()["episodes"]] == [red_ch[0]]
    login(client, "officer_td")
    (only,) = client.get("/api/indicators/coverage").json()["episodes"]
    assert only["episode"] == td and {z["zone"] for z in only["zones"]} == set(console_config.affected_zones("TD-001"))
    # the residents to phone, with their numbers masked but for the last 4 digits (operators see them whole)
    shown = sorted(p["phone"] for z in only["zones"] for p in z["not_reached"])
    phones = sorted(p for z in subscribers(console_config, "TD-001").values() for p in z)
    assert shown and shown == sorted("*" * (len(p) - 4) + p[-4:] for p in phones)


def test_coverage_window(client: TestClient, red_ch: tuple[str, dict[str, list[str]]], clock: Clock) -> None:
    clock.advance(3 * 86400)
    login(client, "admin")
    assert client.get("/api/indicators/coverage?days=2").json()["episodes"] == []
    assert len(client.get("/api/indicators/coverage?days=7").json()["episodes"]) == 1
    assert client.get("/api/indicators/coverage?days=0").status_code == 422
    assert client.get("/api/indicators/coverage?days=91").status_code == 422


def test_safety_ranking_for_each_role(client: TestClient, red_ch: tuple[str, dict[str, list[str]]],
                                      console_config: Config) -> None:
    enterprises = list(dict.fromkeys(s.enterprise for s in console_config.sites))
    login(client, "op")
    data = client.get("/api/indicators/safety").json()
    assert len(data["dates"]) == 7 and data["ack_level"] == console_config.settings.notify.escalation.min_level
    ranked = data["enterprises"]
    assert sorted(r["enterprise"] for r in ranked) == sorted(enterprises)
    assert [r["rank"] for r in ranked] == list(range(1, len(enterprises) + 1))
    means = [r["mean"] for r in ranked]
    assert means == sorted(means)
    ch = next(r for r in ranked if r["enterprise"] == CH_ENTERPRISE)
    # today: a red warning unanswered past its 叫应 time (the clock is an hour on)
    assert ch["today"]["acknowledge"]["late"] == 1 and ch["index"] < 100 and ranked[0] is ch
    assert len(ch["trend"]) == 7 and ch["trend"][-1] == ch["index"]
    assert len(client.get("/api/indicators/safety?days=3").json()["dates"]) == 3
    login(client, "officer_td")
    assert [r["enterprise"] for r in client.get("/api/indicators/safety").json()["enterprises"]] == [TD_ENTERPRISE]


def test_not_logged_in(client: TestClient) -> None:
    assert client.get("/api/indicators/coverage").status_code == 401
    assert client.get("/api/indicators/safety").status_code == 401


def test_the_page_is_in_the_navigation(console_config: Config, console_store: Store, clock: Clock,
                                       users: object) -> None:
    with TestClient(create_app(console_config, console_store, clock=clock)) as c:
        assert c.get("/indicators", follow_redirects=False).status_code == 303
        login(c, "officer_ch")
        page = c.get("/indicators")
        assert page.status_code == 200
        assert 'data-testid="nav-indicators"' in page.text and "/static/pages/indicators.js" in page.text
        assert "预警信息公众覆盖率" in page.text
        assert "Public warning coverage" in c.get("/indicators?lang=en").text
