"""Channel alarms (alerts/channel_alarm.py): operators learn that the SMS provider is failing, through
the second SMS account, the console API and /metrics, and learn when it works again; meanwhile no
warning SMS is lost or sent twice.

Real outbox rows from two red warnings of CH-001, the real twilio client against two fake Twilio
servers (the provider and a second account), on SQLite and PostgreSQL. The provider's outage lasts
three minutes of the dispatcher's clock, which the test moves forward instead of waiting.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from alerts.channel_alarm import FALLBACK, ChannelAlarms, active_alarms
from alerts.channels.sms import SmsChannel
from alerts.claims import Claims
from alerts.dispatch import Dispatcher
from alerts.fakes.twilio import FakeTwilioServer
from alerts.store import Notification, Store
from config.models import Config, SmsSettings
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)
from tests.alerts.test_dispatch import CFG, Clock, clock, messages, outbox, planned  # noqa: F401
from tests.alerts.test_dispatch import settled

OPERATORS = sorted(r.phone for r in CFG.recipients if r.role == "operator")
OUTAGE_S = 180


def with_fallback(config: Config, server: FakeTwilioServer | None, **alarm: float) -> Config:
    fallback = server and SmsSettings(account_sid=server.account_sid, auth_token=server.auth_token,
                                      from_number="+8610690000999", base_url=server.url)
    notify = config.settings.notify.model_copy(
        update={"channel_alarm": config.settings.notify.channel_alarm.model_copy(update=alarm)})
    settings = config.settings.model_copy(update={"sms_fallback": fallback, "notify": notify})
    return config.model_copy(update={"settings": settings})


@pytest.fixture(scope="module")
def second_server() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(account_sid="AC" + "2" * 32, auth_token="second-token", step_s=0.02) as server:
        yield server


@pytest.fixture
def second(second_server: FakeTwilioServer) -> FakeTwilioServer:
    httpx.post(second_server.url + "/_fake/reset", trust_env=False).raise_for_status()
    return second_server


def metric(name: str, channel: str) -> float:
    return REGISTRY.get_sample_value(name, {"channel": channel}) or 0.0


def test_a_provider_outage_alarms_the_operators_and_loses_nothing(
        store: Store, planned: list[Notification], fake: FakeTwilioServer, second: FakeTwilioServer,
        channel: SmsChannel, clock: Clock) -> None:
    config = with_fallback(CFG, second)
    fallback = SmsChannel(second.account_sid, second.auth_token, "+8610690000999", base_url=second.url)
    d = Dispatcher(store, config, channel, clock=clock, claims=Claims(store, "p0", 30.0), fallback=fallback,
                   publish_cap=lambda zone, xml: None)
    raised_before = metric("hazwatch_channel_alarms_total", "sms")
    httpx.post(f"{fake.url}/_fake/fail", json={"mode": "503", "count": 100_000},
               trust_env=False).raise_for_status()

    while clock.shift.total_seconds() < OUTAGE_S:  # three minutes of 503
        d.run_once()
        clock.shift += dt.timedelta(seconds=10)

    assert messages(fake) == [], "the provider took nothing"
    alarms = active_alarms(store)
    assert [a.channel for a in alarms] == ["sms"] and alarms[0].failures >= 5
    assert "503" in (alarms[0].last_error or "")
    told = messages(second)
    assert sorted(m["to"] for m in told) == OPERATORS, "each operator told once, through the second account"
    assert all("短信通道" in m["body"] and "发送失败" in m["body"] for m in told)
    assert metric("hazwatch_channel_alarms_total", "sms") == raised_before + 1
    assert metric("hazwatch_channel_alarm", "sms") == 1
    assert {r.status for r in outbox(store) if r.channel == "sms"} == {"pending"}, "every warning still waits"

    httpx.post(f"{fake.url}/_fake/reset", trust_env=False).raise_for_status()  # the provider is back
    for _ in range(100):
        if settled(store):
            break
        d.run_once()
        clock.shift += dt.timedelta(seconds=10)

    assert settled(store)
    rows = outbox(store)
    sms_rows = [r for r in rows if r.channel == "sms"]
    assert {r.status for r in sms_rows} == {"sent"}
    sent = messages(fake)
    assert len(sent) == len({r.group_key for r in sms_rows}) == 7, "one SMS per recipient"
    assert max(Counter((m["to"], m["body"]) for m in sent).values()) == 1, "none twice"
    assert {m["sid"] for m in sent} == {r.provider_id for r in sms_rows}
    assert active_alarms(store) == []
    assert metric("hazwatch_channel_alarm", "sms") == 0
    told = messages(second)
    assert sorted(m["to"] for m in told) == sorted(OPERATORS * 2), "raised once and cleared once"
    assert sum("恢复" in m["body"] for m in told) == len(OPERATORS)
    assert {r.status for r in rows if r.channel == FALLBACK} == {"sent"}


def test_the_alarm_is_raised_once_by_several_processes_and_after_minutes_too(store: Store, clock: Clock) -> None:
    config = with_fallback(CFG, None, after_failures=100, after_min=2.0)
    a, b = (ChannelAlarms(Store(store.url, migrate=False), config, clock) for _ in range(2))
    a.failed("sms", "HTTP 503")
    b.failed("sms", "HTTP 503")
    clock.shift += dt.timedelta(minutes=1)
    a.check()
    b.check()
    assert active_alarms(store) == [], "2 failures within a minute: not yet"

    clock.shift += dt.timedelta(minutes=1, seconds=1)
    before = metric("hazwatch_channel_alarms_total", "sms")
    a.check()
    b.check()
    b.failed("sms", "connection refused")
    [alarm] = active_alarms(store)
    assert (alarm.channel, alarm.failures, alarm.last_error) == ("sms", 3, "connection refused")
    assert metric("hazwatch_channel_alarms_total", "sms") == before + 1, "raised by one process only"
    assert [r for r in outbox(store) if r.channel == FALLBACK] == [], "no second account: no SMS"

    b.succeeded("sms")
    a.succeeded("sms")
    assert active_alarms(store) == []
    a.failed("sms", "HTTP 503")
    assert active_alarms(store) == [], "the count starts again after a success"


def test_a_refused_message_is_not_a_failing_channel(
        store: Store, planned: list[Notification], fake: FakeTwilioServer, channel: SmsChannel,
        clock: Clock) -> None:
    """Invalid numbers (21211) are the recipients' problem: the channel works."""
    d = Dispatcher(store, with_fallback(CFG, None, after_failures=1), channel, clock=clock,
                   claims=Claims(store, "p0", 30.0), publish_cap=lambda zone, xml: None)
    httpx.post(f"{fake.url}/_fake/fail", json={"mode": "21211", "count": 100},
               trust_env=False).raise_for_status()
    d.run_once()
    assert {r.status for r in outbox(store) if r.channel == "sms"} == {"failed"}
    assert active_alarms(store) == []
