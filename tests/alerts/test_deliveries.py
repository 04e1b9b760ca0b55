"""Delivery statuses onto the outbox (alerts/deliveries.py): a final status is final, and a
repeated callback is recorded once.

First through the HTTP app with FastAPI's TestClient, then the real thing: red warnings planned by
:class:`alerts.pipeline.Intake`, sent by the :class:`alerts.dispatch.Dispatcher` through the fake
Twilio server, whose signed callbacks reach a real ``serve_in_thread`` instance. Every test runs
on SQLite and PostgreSQL (the ``store`` fixture of ``tests/alerts/db.py``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from alerts.channels.sms import SmsChannel
from alerts.claims import Claims
from alerts.deliveries import (
    RETRY_AFTER_FAILED_DELIVERY_S,
    apply_recorded_deliveries,
    callback_key,
    record_status,
)
from alerts.dispatch import Dispatcher
from alerts.fakes.twilio import FakeTwilioServer
from alerts.http import STATUS_PATH, Served, create_alerts_api, serve_in_thread, status_callback_url
from alerts.pipeline import Intake
from alerts.store import Delivery, Notification, Store, utcnow
from config import example_dir, load_config
from config.models import Config
from formats.warning import WarningEvent, episode_id
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

T = TypeVar("T")
TOKEN = "test-auth-token"
NOW = dt.datetime(2025, 11, 23, 6, 30, tzinfo=dt.UTC)
SID = "SM" + "c" * 32
TO = "+8613700000201"
_keys = itertools.count()


def wait_for(probe: Callable[[], T], timeout_s: float = 15.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {value!r})")
        time.sleep(0.01)


def _params(status: str, sid: str = SID, error_code: int | None = None) -> dict[str, str]:
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "0" * 32,
              "From": "+15005550006", "To": TO, "MessageStatus": status, "SmsStatus": status,
              "ApiVersion": "2010-04-01"}
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def _parse(item: str) -> dict[str, str]:
    """``"failed:30001"`` -> the callback's form fields."""
    status, _, code = item.partition(":")
    return _params(status, error_code=int(code) if code else None)


def _sms_row(store: Store, sid: str = SID) -> int:
    row = Notification(key=f"k{next(_keys)}", channel="sms", episode="ep-1", site="TD-001",
                       kind="raised", level="red", recipient=TO, role="resident", language="zh-CN",
                       event="{}", status="sent", sent_at=NOW, not_before=NOW, provider_id=sid)
    with store.session.begin() as s:
        s.add(row)
    return row.id


def _row(store: Store, row_id: int) -> Notification:
    with store.session() as s:
        row = s.get(Notification, row_id)
        assert row is not None
        return row


def _deliveries(store: Store, sid: str = SID) -> list[Delivery]:
    with store.session() as s:
        return list(s.scalars(select(Delivery).where(Delivery.provider_id == sid).order_by(Delivery.id)))


# -- through the HTTP app ------------------------------------------------------------------------
class Clock:
    """Wall time plus a shift the test controls (the fake provider stamps messages with wall time)."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.start, self.shift = start, dt.timedelta()

    def __call__(self) -> dt.datetime:
        return (self.start or utcnow()) + self.shift


@pytest.fixture
def app_clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def client(store: Store, app_clock: Clock) -> TestClient:
    config = load_config(example_dir(), env={"TWILIO_AUTH_TOKEN": TOKEN})
    return TestClient(create_alerts_api(store, config, clock=app_clock))


def _post(client: TestClient, params: dict[str, str]) -> int:
    signature = RequestValidator(TOKEN).compute_signature(f"http://testserver{STATUS_PATH}", params)
    return client.post(STATUS_PATH, data=params, headers={"X-Twilio-Signature": signature}).status_code


RETRY_AT = NOW + dt.timedelta(seconds=RETRY_AFTER_FAILED_DELIVERY_S)


@pytest.mark.parametrize(
    ("callbacks", "delivery", "code", "status", "not_before"),
    [
        # a final status is final: a later, different one is stored and changes nothing
        (["delivered", "failed:30001"], "delivered", None, "sent", NOW),
        (["sent", "delivered", "undelivered:30001", "failed:30003"], "delivered", None, "sent", NOW),
        (["read", "failed:30001"], "read", None, "sent", NOW),
        (["canceled", "failed:30001"], "canceled", None, "sent", NOW),
        (["undelivered:30003", "failed:30001"], "undelivered", 30003, "sent", NOW),
        # ... except that the first final status, when a retryable failure, sends it again
        (["sent", "failed:30001"], "failed", 30001, "pending", RETRY_AT),
        (["failed:30001", "delivered"], "failed", 30001, "pending", RETRY_AT),
        (["undelivered:30001", "failed:30001"], "undelivered", 30001, "pending", RETRY_AT),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, list) else None,
)
def test_a_later_final_status_changes_nothing(client: TestClient, store: Store, callbacks: list[str],
                                              delivery: str, code: int | None, status: str,
                                              not_before: dt.datetime) -> None:
    row = _sms_row(store)

    for item in callbacks:
        assert _post(client, _parse(item)) == 204

    n = _row(store, row)
    assert (n.delivery_status, n.error_code, n.status, n.not_before) == (delivery, code, status, not_before)
    assert [d.status for d in _deliveries(store)] == [c.partition(":")[0] for c in callbacks]  # all kept


@pytest.mark.parametrize("callback", ["sent", "delivered", "failed:30001", "undelivered:30003"])
def test_a_callback_posted_five_times_is_recorded_once(client: TestClient, store: Store, app_clock: Clock,
                                                       callback: str) -> None:
    row = _sms_row(store)
    params = _parse(callback)
    assert _post(client, params) == 204
    first = _row(store, row)

    for _ in range(4):
        app_clock.shift += dt.timedelta(minutes=1)  # a repeat later must not move the retry either
        assert _post(client, params) == 204

    [stored] = _deliveries(store)
    assert (stored.status, stored.received_at) == (params["MessageStatus"], NOW)
    assert stored.key == callback_key(SID, params["MessageStatus"], stored.error_code)
    again = _row(store, row)
    assert (again.status, again.delivery_status, again.error_code, again.not_before, again.error) == (
        first.status, first.delivery_status, first.error_code, first.not_before, first.error)


def test_a_repeat_is_reported_as_replayed(store: Store) -> None:
    row = _sms_row(store)
    params = _params("failed", error_code=30001)

    outcomes = [record_status(store, params, NOW + dt.timedelta(seconds=i)) for i in range(5)]

    assert outcomes == ["updated"] + ["replayed"] * 4
    assert len(_deliveries(store)) == 1
    assert _row(store, row).status == "pending"
    # the same status with another code is another callback
    assert record_status(store, _params("failed", error_code=30003), NOW) == "kept"
    assert record_status(store, _params("failed"), NOW) == "kept"
    assert [(d.status, d.error_code) for d in _deliveries(store)] == [
        ("failed", 30001), ("failed", 30003), ("failed", None)]
    assert (_row(store, row).delivery_status, _row(store, row).error_code) == ("failed", 30001)


def test_a_30001_that_overtook_the_sender_still_sends_again(client: TestClient, store: Store) -> None:
    row = _sms_row(store, sid="")  # the provider called back before the sender recorded the sid
    assert _post(client, _params("failed", error_code=30001)) == 204
    with store.session.begin() as s:  # what the sender does with the provider's answer
        s.get(Notification, row).provider_id = SID  # type: ignore[union-attr]

    apply_recorded_deliveries(store, SID)

    n = _row(store, row)
    assert (n.status, n.delivery_status, n.error_code, n.not_before) == ("pending", "failed", 30001, RETRY_AT)


# -- the real thing: Intake, Dispatcher, the fake Twilio server, a real HTTP server ---------------
SUBJECT = "CH-001/GT-101"


@pytest.fixture
def twilio_config(fake: FakeTwilioServer) -> Config:
    return load_config(example_dir(), env={"TWILIO_AUTH_TOKEN": fake.auth_token})


@pytest.fixture
def served(store: Store, twilio_config: Config) -> Iterator[Served]:
    served = serve_in_thread(create_alerts_api(store, twilio_config))
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dispatcher(store: Store, twilio_config: Config, channel: SmsChannel, served: Served,
               clock: Clock) -> Dispatcher:
    return Dispatcher(store, twilio_config, channel, clock=clock, claims=Claims(store, "test", 30.0),
                      publish_cap=lambda _zone, _xml: None,
                      status_callback=status_callback_url(twilio_config, served.url))


def _red(config: Config, clock: Clock) -> WarningEvent:
    site, sensor_id = SUBJECT.split("/")
    sensor = config.sensor(site, sensor_id)
    assert sensor is not None
    rule = sensor.thresholds[0]
    rung = next(s.value for s in rule.ladder if s.level == "red")
    ts = int(clock().timestamp() * 1000)
    return WarningEvent(episode=episode_id(SUBJECT, rule.rule, ts), site=site, subject=SUBJECT,
                        rule=rule.rule, kind="raised", level="red", previous="normal", ts=ts,
                        emitted_at=ts, value=rung, threshold=rung, unit=sensor.unit,
                        detail={"peak": "red", "raised_ts": ts, "quantity": sensor.quantity})


def _sms(store: Store) -> list[Notification]:
    with store.session() as s:
        return list(s.scalars(select(Notification).where(Notification.channel == "sms").order_by(Notification.id)))


def _messages(fake: FakeTwilioServer) -> list[dict[str, Any]]:
    return list(httpx.get(f"{fake.url}/_fake/messages", trust_env=False).json()["messages"])


def _sent_once(rows: list[Notification]) -> bool:
    return all(r.attempts >= 1 and r.status not in ("sending", "unknown") for r in rows)


def _settled(rows: list[Notification]) -> bool:
    return all(r.status in ("sent", "failed", "suppressed") for r in rows)


def _dispatch(dispatcher: Dispatcher, store: Store, until: Callable[[list[Notification]], bool]) -> None:
    """Run dispatch passes until the SMS rows satisfy ``until``."""
    def done() -> bool:
        dispatcher.run_once()
        return until(_sms(store))
    wait_for(done)


def _replay(served: Served, token: str, payload: dict[str, str]) -> int:
    """POST a callback exactly as stored (the fake's own form fields), signed as Twilio signs."""
    url = served.url + STATUS_PATH
    signature = RequestValidator(token).compute_signature(url, payload)
    return httpx.post(url, data=payload, headers={"X-Twilio-Signature": signature}, trust_env=False).status_code


def test_failed_30001_after_delivered_sends_no_second_sms(
        store: Store, fake: FakeTwilioServer, twilio_config: Config, served: Served,
        dispatcher: Dispatcher, clock: Clock) -> None:
    assert Intake(store, twilio_config, clock).event(_red(twilio_config, clock))
    _dispatch(dispatcher, store, _settled)
    wait_for(lambda: {r.delivery_status for r in _sms(store)} == {"delivered"})
    sent = _messages(fake)
    row = _sms(store)[0]
    sid = row.provider_id
    assert sid is not None
    [delivered] = [d for d in _deliveries(store, sid) if d.status == "delivered"]

    late = {**delivered.payload, "MessageStatus": "failed", "SmsStatus": "failed", "ErrorCode": "30001"}
    assert _replay(served, fake.auth_token, late) == 204

    clock.shift = dt.timedelta(seconds=RETRY_AFTER_FAILED_DELIVERY_S * 4)  # past any retry backoff
    for _ in range(3):
        dispatcher.run_once()
    assert _messages(fake) == sent, "no second SMS"
    after = _row(store, row.id)
    assert (after.status, after.delivery_status, after.error_code, after.attempts, after.provider_id) == (
        "sent", "delivered", None, 1, sid)
    assert [(d.status, d.error_code) for d in _deliveries(store, sid)] == [
        ("sent", None), ("delivered", None), ("failed", 30001)]  # the late one is kept for the audit


def test_a_30001_callback_posted_five_times_is_one_row_and_one_resend(
        store: Store, fake: FakeTwilioServer, twilio_config: Config, served: Served,
        dispatcher: Dispatcher, clock: Clock) -> None:
    assert Intake(store, twilio_config, clock).event(_red(twilio_config, clock))
    row = _sms(store)[0]
    httpx.post(f"{fake.url}/_fake/fail", json={"mode": "30001", "to": row.recipient},
               trust_env=False).raise_for_status()
    _dispatch(dispatcher, store, _sent_once)
    first_sid = _row(store, row.id).provider_id
    assert first_sid is not None
    [failed] = wait_for(lambda: _deliveries(store, first_sid))  # the fake's own callback
    assert (failed.status, failed.error_code) == ("failed", 30001)
    wait_for(lambda: _row(store, row.id).status == "pending")

    for _ in range(4):  # Twilio or a proxy repeating it
        assert _replay(served, fake.auth_token, failed.payload) == 204

    assert [d.id for d in _deliveries(store, first_sid)] == [failed.id]
    clock.shift = dt.timedelta(seconds=RETRY_AFTER_FAILED_DELIVERY_S * 4)
    _dispatch(dispatcher, store, _settled)
    resent = _row(store, row.id)
    assert resent.provider_id not in (None, first_sid) and resent.attempts == 2
    wait_for(lambda: _row(store, row.id).delivery_status == "delivered")
    # once more, after the resend went out: still nothing
    assert _replay(served, fake.auth_token, failed.payload) == 204
    for _ in range(3):
        dispatcher.run_once()

    sms = _messages(fake)
    per_recipient = Counter(m["to"] for m in sms)
    assert per_recipient[row.recipient] == 2, "the original and one resend"
    assert set(per_recipient.values()) == {1, 2} and len(sms) == len(_sms(store)) + 1
    assert [d.id for d in _deliveries(store, first_sid)] == [failed.id]
    assert (_row(store, row.id).status, _row(store, row.id).delivery_status) == ("sent", "delivered")
