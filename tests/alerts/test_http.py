"""The alerts HTTP API (alerts/http.py): Twilio status callbacks and the CAP Atom feed.

docs/STANDARDS.md §5 "Warning dissemination": statuses arrive by status callback signed with
``X-Twilio-Signature``; every CAP message is valid against the packaged OASIS CAP 1.2 schema
``alerts/standards/CAP-v1.2.xsd``.
Component tests use FastAPI's TestClient; one test sends a real message through the fake Twilio
server to a real ``serve_in_thread`` instance. Every test runs on SQLite and PostgreSQL (the
``store`` fixture of ``tests/alerts/db.py``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from alerts.cap import CAP_NS, CAP_XSD, build_cap, validate_cap
from alerts.channels.sms import SmsChannel
from alerts.deliveries import apply_recorded_deliveries
from alerts.fakes.twilio import FakeTwilioServer
from alerts.http import (
    ATOM_NS,
    STATUS_PATH,
    active_cap_entries,
    create_alerts_api,
    serve_in_thread,
    status_callback_url,
)
from alerts.store import Delivery, Episode, LevelChange, Notification, Store
from config import example_dir, load_config
from config.models import Config
from formats.warning import WarningEvent
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

T = TypeVar("T")
XSD = CAP_XSD  # the OASIS CAP 1.2 schema (its checksum is pinned in tests/alerts/test_cap.py)
NS = {"a": ATOM_NS, "cap": CAP_NS}
TOKEN = "test-auth-token"
NOW = dt.datetime(2025, 11, 23, 6, 30, tzinfo=dt.UTC)  # 14:30 Beijing time
SID = "SM" + "a" * 32
TO = "+8613700000201"
_keys = itertools.count()


def wait_for(probe: Callable[[], T], timeout_s: float = 10.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {value!r})")
        time.sleep(0.01)


# -- fixtures ------------------------------------------------------------------------------------
def _config(token: str = TOKEN, public_url: str | None = None) -> Config:
    config = load_config(example_dir(), env={"TWILIO_AUTH_TOKEN": token})
    if public_url is None:
        return config
    http = config.settings.notify.http.model_copy(update={"public_url": public_url})
    notify = config.settings.notify.model_copy(update={"http": http})
    settings = config.settings.model_copy(update={"notify": notify})
    return config.model_copy(update={"settings": settings})


@pytest.fixture
def config() -> Config:
    return _config()


@pytest.fixture
def client(store: Store, config: Config) -> TestClient:
    return TestClient(create_alerts_api(store, config, clock=lambda: NOW))


def _sms_row(store: Store, sid: str | None = SID, **values: Any) -> int:
    values = {"status": "sent", "sent_at": NOW, **values}
    row = Notification(
        key=f"k{next(_keys)}", channel="sms", episode="ep-1", site="TD-001", kind="raised",
        level="red", recipient=TO, role="resident", language="zh-CN", event="{}",
        provider_id=sid, **values,
    )
    with store.session.begin() as s:
        s.add(row)
    return row.id


def _notification(store: Store, row_id: int) -> Notification:
    with store.session() as s:
        n = s.get(Notification, row_id)
        assert n is not None
        return n


def _deliveries(store: Store, sid: str = SID) -> list[Delivery]:
    with store.session() as s:
        return list(s.scalars(select(Delivery).where(Delivery.provider_id == sid)
                              .order_by(Delivery.id)))


def _params(status: str, sid: str = SID, error_code: int | None = None) -> dict[str, str]:
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32,
              "From": "+15005550006", "To": TO, "MessageStatus": status, "SmsStatus": status,
              "ApiVersion": "2010-04-01"}
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def _post(client: TestClient, params: dict[str, str], *, url: str | None = None,
          token: str = TOKEN, signature: str | None = "compute", path: str = STATUS_PATH) -> int:
    """POST a status callback as Twilio would, signed over ``url`` (default: the one posted to)."""
    signed = url or f"http://testserver{path}"
    if signature == "compute":
        signature = RequestValidator(token).compute_signature(signed, params)
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    return client.post(path, data=params, headers=headers).status_code


# -- status callbacks ----------------------------------------------------------------------------
def test_a_signed_callback_is_stored(client: TestClient, store: Store):
    row = _sms_row(store)

    assert _post(client, _params("sent")) == 204

    [delivery] = _deliveries(store)
    assert (delivery.status, delivery.error_code, delivery.received_at) == ("sent", None, NOW)
    assert delivery.payload["MessageStatus"] == "sent" and delivery.payload["To"] == TO
    assert _notification(store, row).delivery_status == "sent"


def test_a_failure_code_is_stored(client: TestClient, store: Store):
    row = _sms_row(store)

    assert _post(client, _params("undelivered", error_code=30003)) == 204

    assert [(d.status, d.error_code) for d in _deliveries(store)] == [("undelivered", 30003)]
    n = _notification(store, row)
    assert (n.delivery_status, n.error_code) == ("undelivered", 30003)


@pytest.mark.parametrize(
    "tamper",
    ["param", "wrong-token", "no-signature", "garbage-signature", "other-url", "added-param"],
)
def test_a_bad_signature_is_refused_and_nothing_is_stored(
    client: TestClient, store: Store, tamper: str
):
    row = _sms_row(store, delivery_status="sent")
    params = _params("delivered")
    good = RequestValidator(TOKEN).compute_signature(f"http://testserver{STATUS_PATH}", params)
    signature: str | None = good
    url = None
    token = TOKEN
    if tamper == "param":  # signed "delivered", claims "failed"
        signature, params = good, {**params, "MessageStatus": "failed", "SmsStatus": "failed"}
    elif tamper == "added-param":
        params = {**params, "ErrorCode": "30003"}
    elif tamper == "wrong-token":
        signature, token = "compute", "not-the-token"
    elif tamper == "no-signature":
        signature = None
    elif tamper == "garbage-signature":
        signature = "c2lnbmF0dXJl"
    elif tamper == "other-url":  # signed for another endpoint
        signature, url = "compute", "http://testserver/other/status"

    assert _post(client, params, url=url, token=token, signature=signature) == 403

    assert _deliveries(store) == []
    assert _notification(store, row).delivery_status == "sent"


@pytest.mark.parametrize(
    ("statuses", "final", "code"),
    [
        (["queued", "sent", "delivered"], "delivered", None),
        (["delivered", "sent"], "delivered", None),
        (["sent", "delivered", "queued", "sending"], "delivered", None),
        (["undelivered:30003", "sent"], "undelivered", 30003),
        (["failed:30001", "delivered", "sent"], "failed", 30001),
        (["sent", "queued"], "sent", None),
        (["accepted", "scheduled"], "scheduled", None),
        (["delivered", "read"], "read", None),
        (["sent", "partially_delivered"], "sent", None),  # unknown to us: stored, not applied
        (["partially_delivered"], "partially_delivered", None),  # ... but better than nothing
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else str(v),
)
def test_out_of_order_callbacks_keep_the_final_status(
    client: TestClient, store: Store, statuses: list[str], final: str, code: int | None
):
    row = _sms_row(store)

    for item in statuses:
        status, _, error = item.partition(":")
        assert _post(client, _params(status, error_code=int(error) if error else None)) == 204

    stored = _deliveries(store)
    # the status columns are String(32), longer than any Twilio status word
    assert [d.status for d in stored] == [s.partition(":")[0] for s in statuses]
    assert [d.payload["MessageStatus"] for d in stored] == [s.partition(":")[0] for s in statuses]
    n = _notification(store, row)
    assert (n.delivery_status, n.error_code) == (final, code)


def test_an_unknown_sid_is_stored_anyway(client: TestClient, store: Store):
    row = _sms_row(store)
    other = "SM" + "b" * 32

    assert _post(client, _params("delivered", sid=other)) == 204

    assert [d.status for d in _deliveries(store, other)] == ["delivered"]
    assert _notification(store, row).delivery_status is None


def test_a_callback_before_the_sid_was_recorded_is_replayed(client: TestClient, store: Store):
    row = _sms_row(store, sid=None)  # the provider answered slower than it called back
    assert _post(client, _params("sent")) == 204
    assert _post(client, _params("delivered")) == 204
    with store.session.begin() as s:
        s.get(Notification, row).provider_id = SID  # type: ignore[union-attr]

    apply_recorded_deliveries(store, SID)

    assert _notification(store, row).delivery_status == "delivered"


def test_the_signed_url_includes_the_query(client: TestClient, store: Store):
    row = _sms_row(store)
    path = f"{STATUS_PATH}?notification={row}"

    assert _post(client, _params("sent"), path=path) == 204
    unsigned_query = f"http://testserver{STATUS_PATH}"
    assert _post(client, _params("delivered"), path=path, url=unsigned_query) == 403

    assert _notification(store, row).delivery_status == "sent"


def test_behind_a_proxy_the_public_url_is_signed(store: Store):
    public = "https://alerts.example.gov.cn/hazwatch/"
    client = TestClient(create_alerts_api(store, _config(public_url=public), clock=lambda: NOW))
    row = _sms_row(store)
    url = "https://alerts.example.gov.cn/hazwatch/twilio/status"

    assert _post(client, _params("sent")) == 403  # signed over the URL the server saw
    assert _post(client, _params("sent"), url=url) == 204

    assert _notification(store, row).delivery_status == "sent"


def test_a_signed_callback_without_sid_or_status_is_a_bad_request(
    client: TestClient, store: Store
):
    params = {"AccountSid": "AC" + "0" * 32, "MessageStatus": "sent"}

    assert _post(client, params) == 400
    assert _post(client, {"MessageSid": SID}) == 400

    assert _deliveries(store) == []


def test_an_oversized_callback_is_refused(client: TestClient, store: Store):
    assert _post(client, {**_params("sent"), "Body": "x" * 70_000}) == 413
    assert _deliveries(store) == []


def test_status_callback_url(config: Config):
    local = "http://127.0.0.1:8090"
    assert status_callback_url(config, local + "/") == local + "/twilio/status"
    public = _config(public_url="https://alerts.example.gov.cn/hw/")
    assert status_callback_url(public, "http://127.0.0.1:8090") == (
        "https://alerts.example.gov.cn/hw/twilio/status"
    )
    assert status_callback_url(public) == "https://alerts.example.gov.cn/hw/twilio/status"
    with pytest.raises(ValueError, match="no public_url"):
        status_callback_url(config)


def test_healthz_names_what_fails(store: Store):
    checks = {"database": lambda: None, "kafka": lambda: None}
    client = TestClient(create_alerts_api(store, _config(), checks=checks))
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True, "status": "ok", "service": "alerts",
                                                             "checks": {"database": None, "kafka": None}})
    checks["kafka"] = lambda: "Kafka at k:9092 did not answer"  # read at each request
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": None, "kafka": "Kafka at k:9092 did not answer"}


def test_metrics_show_the_channel_alarm_counters(client: TestClient):
    from alerts.channel_alarm import ALARMS

    ALARMS.labels("sms")  # a labelled counter shows once it has a child
    response = client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    assert 'hazwatch_channel_alarms_total{channel="sms"}' in response.text


# -- the real thing: the twilio client, the fake Twilio server, a real HTTP server -----------------
def _delivered(store: Store, sid: str) -> list[Delivery]:
    return [d for d in _deliveries(store, sid) if d.status == "delivered"]


def test_a_real_message_reports_delivered(fake: FakeTwilioServer, store: Store):
    config = _config(token=fake.auth_token)
    served = serve_in_thread(create_alerts_api(store, config), "127.0.0.1", 0)
    try:
        assert served.port > 0 and served.url == f"http://127.0.0.1:{served.port}"
        assert httpx.get(served.url + "/healthz", trust_env=False).json()["ok"] is True
        channel = SmsChannel(fake.account_sid, fake.auth_token, "+15005550006", base_url=fake.url)
        row = _sms_row(store, sid=None, status="sending")
        callback = status_callback_url(config, served.url)

        result = channel.send(TO, "【红色预警】夏河村请立即转移。", status_callback=callback)
        assert result.outcome == "sent" and result.sid is not None
        sid = result.sid
        with store.session.begin() as s:  # what the SMS sender does with the answer
            s.get(Notification, row).provider_id = sid  # type: ignore[union-attr]
        apply_recorded_deliveries(store, sid)

        wait_for(lambda: _delivered(store, sid))
        assert [d.status for d in _deliveries(store, sid)] == ["sent", "delivered"]
        assert _notification(store, row).delivery_status == "delivered"
        attempts = httpx.get(fake.url + "/_fake/callbacks", trust_env=False).json()["callbacks"]
        assert [(a["status"], a["http_status"]) for a in attempts] == [
            ("sent", 204),
            ("delivered", 204),
        ]
    finally:
        served.stop()
    assert not served.thread.is_alive()


def test_a_real_callback_with_the_wrong_token_is_refused(fake: FakeTwilioServer, store: Store):
    served = serve_in_thread(create_alerts_api(store, _config(token="not-the-fake's-token")))
    try:
        channel = SmsChannel(fake.account_sid, fake.auth_token, "+15005550006", base_url=fake.url)
        result = channel.send(TO, "测试", status_callback=served.url + STATUS_PATH)
        assert result.outcome == "sent"

        def refused() -> list[Any]:
            attempts = httpx.get(fake.url + "/_fake/callbacks", trust_env=False).json()["callbacks"]
            return attempts if len(attempts) >= 2 else []

        assert [a["http_status"] for a in wait_for(refused)] == [403, 403]
        assert _deliveries(store, result.sid or "") == []
    finally:
        served.stop()


# -- the CAP Atom feed ---------------------------------------------------------------------------
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")
ID_RE = re.compile(r"^\d{14}_\d{14}_\d$")
T0 = dt.datetime(2025, 11, 23, 5, 0, 7, 250_000, tzinfo=dt.UTC)  # 13:00:07 Beijing time
TS0 = int(T0.timestamp() * 1000) - 400
# subject -> (rule, unit, value, threshold) of its level changes
SUBJECTS = {
    "RG-001/RAIN-1H": ("rain_1h", "mm", 86.0, 80.0),
    "TD-001/PZ-01": ("phreatic_depth", "m", 4.7, 4.8),
    "TD-001/FB-01": ("freeboard", "m", 0.9, 0.91),
    "TD-001/DB-01": ("dry_beach_length", "m", 90.0, 91.0),
}


def _episode(store: Store, ep_id: str, subject: str, level: str, *, state: str = "active",
             false_alarm: bool = False, recorded_at: dt.datetime = T0) -> None:
    """An episode of ``subject`` raised at ``level``, its level change recorded at that time."""
    rule, unit, value, threshold = SUBJECTS[subject]
    site = subject.split("/")[0]
    with store.session.begin() as s:
        s.add(Episode(id=ep_id, site=site, subject=subject, rule=rule, kind="x", enterprise="e",
                      state=state, level=level, peak=level, unit=unit, last_value=value,
                      raised_ts=TS0, raised_at=T0, false_alarm=false_alarm))
        s.flush()
        s.add(LevelChange(episode_id=ep_id, kind="raised", level=level, previous="normal",
                          value=value, threshold=threshold, ts=TS0, recorded_at=recorded_at))


def _level_change(store: Store, ep_id: str, level: str, previous: str, at: dt.datetime) -> None:
    with store.session.begin() as s:
        ep = s.get(Episode, ep_id)
        assert ep is not None
        _, _, value, threshold = SUBJECTS[ep.subject]
        ep.level = level
        s.add(LevelChange(episode_id=ep_id, kind="escalated", level=level, previous=previous,
                          value=value, threshold=threshold,
                          ts=int(at.timestamp() * 1000), recorded_at=at))


def _broadcast(store: Store, config: Config, ep_id: str, subject: str, sent: dt.datetime, *,
               kind: str = "cap-alert", body: str | None = None) -> str:
    """A sent CAP row, as the alerts service records a broadcast; returns its identifier."""
    rule, unit, value, threshold = SUBJECTS[subject]
    site = config.site(subject.split("/")[0])
    cleared = kind == "cap-allclear"
    event = WarningEvent(episode=ep_id, site=site.id, subject=subject, rule=rule,
                         kind="cleared" if cleared else "escalated",
                         level="normal" if cleared else "red",
                         previous="red" if cleared else "orange",
                         ts=TS0, emitted_at=TS0, value=value, threshold=threshold, unit=unit,
                         detail={"peak": "red"})
    refs = [(config.settings.cap.sender, "33012711000100_20251123130000_0", T0)] if cleared else []
    ident, xml = build_cap(event, site, config.zone(site.zone), config.settings.cap,
                           msg_type="Update" if cleared else "Alert", sent=sent, references=refs)
    with store.session.begin() as s:
        s.add(Notification(key=f"k{next(_keys)}", channel="cap", episode=ep_id, site=site.id,
                           kind=kind, level="red", recipient=site.zone, role="zone",
                           language="zh-CN", event=event.to_json().decode(), status="sent",
                           body=body if body is not None else xml.decode(), provider_id=ident,
                           sent_at=sent))
    return ident


def _feed(client: TestClient) -> etree._Element:
    response = client.get("/cap/feed.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    root = etree.fromstring(response.content)
    assert root.tag == f"{{{ATOM_NS}}}feed"
    return root


def _cap_of(entry: etree._Element) -> etree._Element:
    """The CAP alert embedded in an entry, validated against the CAP 1.2 XSD."""
    [content] = entry.findall("a:content", NS)
    assert content.get("type") == "application/cap+xml"
    assert not (content.text or "").strip()  # inline XML, not escaped text
    [alert] = list(content)
    assert alert.tag == f"{{{CAP_NS}}}alert"
    validate_cap(etree.tostring(alert), XSD)
    return alert


def _text(el: etree._Element, path: str) -> str:
    found = el.find(path, NS)
    assert found is not None and found.text is not None, path
    return found.text


def test_the_feed_carries_the_active_warnings_as_valid_cap(
    client: TestClient, store: Store, config: Config
):
    sent = dt.datetime(2025, 11, 23, 5, 0, 9, tzinfo=dt.UTC)
    _episode(store, "ep-red", "RG-001/RAIN-1H", "red")
    red_id = _broadcast(store, config, "ep-red", "RG-001/RAIN-1H", sent)
    later = dt.datetime(2025, 11, 23, 5, 20, 3, 900_000, tzinfo=dt.UTC)
    _episode(store, "ep-yellow", "TD-001/PZ-01", "yellow", state="acknowledged", recorded_at=later)
    _episode(store, "ep-cleared", "TD-001/FB-01", "red", state="cleared")
    _broadcast(store, config, "ep-cleared", "TD-001/FB-01", sent)
    _episode(store, "ep-false", "TD-001/DB-01", "orange", false_alarm=True)
    _episode(store, "ep-closed", "TD-001/DB-01", "yellow", state="closed")

    feed = _feed(client)

    assert _text(feed, "a:id").startswith("urn:uuid:")
    assert _text(feed, "a:updated") == "2025-11-23T13:20:03+08:00"  # the newest entry
    assert _text(feed, "a:author/a:name") == config.settings.cap.sender
    [self_link] = feed.findall("a:link[@rel='self']", NS)
    assert self_link.get("href") == "http://testserver/cap/feed.atom"
    entries = feed.findall("a:entry", NS)
    assert len(entries) == 2
    by_episode = {}
    for entry in entries:
        alert = _cap_of(entry)
        identifier = _text(alert, "cap:identifier")
        assert _text(entry, "a:id") == identifier and ID_RE.match(identifier)
        headline = _text(alert, "cap:info[cap:language='zh-CN']/cap:headline")
        assert _text(entry, "a:title") == headline
        assert _text(entry, "a:updated") == _text(alert, "cap:sent")
        assert TIME_RE.match(_text(entry, "a:updated"))
        [link] = entry.findall("a:link[@rel='alternate']", NS)
        assert link.get("type") == "application/cap+xml"
        assert link.get("href") == f"http://testserver/cap/{identifier}.xml"
        document = client.get(f"/cap/{identifier}.xml")
        assert document.status_code == 200
        assert document.headers["content-type"] == "application/cap+xml"
        validate_cap(document.content, XSD)
        assert etree.fromstring(document.content).findtext(f"{{{CAP_NS}}}identifier") == identifier
        by_episode[_text(alert, "cap:incidents")] = (entry, alert)
    assert list(by_episode) == ["ep-yellow", "ep-red"]  # newest first

    _, red = by_episode["ep-red"]  # exactly as broadcast
    assert _text(red, "cap:identifier") == red_id
    assert _text(red, "cap:sent") == "2025-11-23T13:00:09+08:00"
    assert _text(red, "cap:info/cap:severity") == "Extreme"
    entry, yellow = by_episode["ep-yellow"]  # built for the feed from its level change
    assert _text(yellow, "cap:msgType") == "Alert"
    assert _text(yellow, "cap:sent") == "2025-11-23T13:20:03+08:00"
    assert _text(yellow, "cap:identifier").startswith("360321110001")  # TD-001's region
    assert _text(yellow, "cap:identifier")[15:29] == "20251123132003"
    assert _text(yellow, "cap:info/cap:severity") == "Moderate"
    assert [i.findtext(f"{{{CAP_NS}}}language") for i in yellow.findall("cap:info", NS)] == [
        "zh-CN", "en"]
    assert _text(yellow, "cap:info/cap:area/cap:geocode/cap:value") == "360321"
    assert entry.find("a:category", NS).get("term") == "yellow"  # type: ignore[union-attr]


def test_an_escalation_gets_a_new_identifier(client: TestClient, store: Store):
    _episode(store, "ep-1", "TD-001/PZ-01", "yellow")
    [first] = _feed(client).findall("a:entry", NS)
    old = _text(first, "a:id")

    _level_change(store, "ep-1", "orange", "yellow", T0 + dt.timedelta(minutes=10))

    [entry] = _feed(client).findall("a:entry", NS)
    alert = _cap_of(entry)
    assert _text(entry, "a:id") != old
    assert _text(alert, "cap:sent") == "2025-11-23T13:10:07+08:00"
    assert _text(alert, "cap:info/cap:severity") == "Severe"
    assert client.get(f"/cap/{old}.xml").status_code == 404  # never broadcast, now superseded


def test_warnings_of_one_second_and_region_get_distinct_identifiers(
    client: TestClient, store: Store
):
    for i, subject in enumerate(["TD-001/PZ-01", "TD-001/FB-01", "TD-001/DB-01"]):
        _episode(store, f"ep-{i}", subject, "yellow")

    first = [_text(e, "a:id") for e in _feed(client).findall("a:entry", NS)]
    again = [_text(e, "a:id") for e in _feed(client).findall("a:entry", NS)]

    assert len(set(first)) == 3 and {i[:-1] for i in first} == {"36032111000100_20251123130007_"}
    assert again == first  # stable from one request to the next
    for identifier in first:
        assert client.get(f"/cap/{identifier}.xml").status_code == 200


def test_a_sent_all_clear_is_served_by_identifier(client: TestClient, store: Store, config: Config):
    _episode(store, "ep-1", "RG-001/RAIN-1H", "red", state="cleared")
    ident = _broadcast(store, config, "ep-1", "RG-001/RAIN-1H", T0, kind="cap-allclear")

    response = client.get(f"/cap/{ident}.xml")

    assert response.status_code == 200
    assert etree.fromstring(response.content).findtext(f"{{{CAP_NS}}}msgType") == "Update"
    assert _feed(client).findall("a:entry", NS) == []  # cleared: not a current warning


def test_an_unknown_identifier_is_404(client: TestClient, store: Store):
    _episode(store, "ep-1", "TD-001/PZ-01", "yellow")

    assert client.get("/cap/36032111000100_20990101000000_0.xml").status_code == 404
    assert client.get("/cap/no-such-thing.xml").status_code == 404


def test_an_empty_feed_is_still_a_valid_feed(client: TestClient):
    feed = _feed(client)

    assert feed.findall("a:entry", NS) == []
    assert _text(feed, "a:updated") == "2025-11-23T14:30:00+08:00"  # the clock
    assert _text(feed, "a:title")


def test_a_warning_whose_cap_fails_is_left_out_and_the_rest_served(client: TestClient, store: Store, config: Config):
    _episode(store, "ep-ok", "TD-001/PZ-01", "yellow")
    _episode(store, "ep-gone", "TD-001/FB-01", "yellow")
    with store.session.begin() as s:  # its site is no longer configured
        s.get(Episode, "ep-gone").site = "XX-999"  # type: ignore[union-attr]
    _episode(store, "ep-bad", "RG-001/RAIN-1H", "red")
    _broadcast(store, config, "ep-bad", "RG-001/RAIN-1H", T0, body="<alert>not CAP</alert>")

    entries = _feed(client).findall("a:entry", NS)

    incidents = sorted(_text(_cap_of(e), "cap:incidents") for e in entries)
    # a broken stored broadcast falls back to a CAP built from the level change
    assert incidents == ["ep-bad", "ep-ok"]  # ep-gone, whose site is gone, is left out
    assert [e.broadcast for e in active_cap_entries(store, config)] == [False, False]


def test_the_feed_links_to_the_public_url(store: Store):
    _episode(store, "ep-1", "TD-001/PZ-01", "yellow")
    public = _config(public_url="https://alerts.example.gov.cn/hw/")
    client = TestClient(create_alerts_api(store, public, clock=lambda: NOW))

    feed = _feed(client)

    [link] = feed.findall("a:entry/a:link", NS)
    assert link.get("href", "").startswith("https://alerts.example.gov.cn/hw/cap/")
    assert feed.find("a:link", NS).get("href") == (  # type: ignore[union-attr]
        "https://alerts.example.gov.cn/hw/cap/feed.atom"
    )
