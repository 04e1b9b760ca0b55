"""The registry's channels in the notify path: a routing rule names them, the outbox plans their
notices (a person's number, or a robot's id for a group channel), the dispatcher sends through
them, honours retry-after, and resolves a crash in flight as each channel allows: looked up and
never sent twice for the SMS providers (the real SDKs against their fakes, the process dying
after the provider took the message), posted again for the robots (at least once)."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from sqlalchemy import select

from alerts.channels.base import ChannelError, Message, Outcome
from alerts.channels.recording import RecordingChannel
from alerts.channels.registry import build_routed
from alerts.channels.sms import SmsChannel
from alerts.channels.sms_aliyun import AliyunSms
from alerts.channels.sms_tencent import TencentSms
from alerts.claims import Claims
from alerts.dispatch import Dispatcher
from alerts.fakes.twilio import FakeTwilioServer
from alerts.fakes import aliyun_sms, tencent_sms
from alerts.fakes.server import FakeServer
from alerts.deliveries import record_receipt
from alerts.pipeline import Intake
from alerts.receipts import ReceiptPoller
from alerts.store import Notification, Store, utcnow
from config import example_dir, load_config
from config.channels import ChannelConfigError
from config.models import Config
from formats.warning import WarningEvent, episode_id
from tests.alerts.channel_fakes import accepted, fail, reset
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

LEASE_S = 30.0
SUBJECT = "CH-001/GT-101"
CHANNELS = {
    "sms_aliyun": {"access_key_id": "LTAI-fake", "access_key_secret": "s", "sign_name": "应急管理",
                   "templates": [{"code": "SMS_100000001", "params": {"site": "site", "level": "level",
                                                                       "value": "value", "time": "time"}}]},
    "sms_tencent": {"secret_id": "AKID-fake", "secret_key": "k", "sms_sdk_app_id": "1400006666",
                    "sign_name": "应急管理", "templates": [{"id": "2000001", "params": ["site", "level"]}]},
    "wecom_robot": {"robots": [{"id": "officers-group", "name": "临港石化安全群", "audiences": ["officers"],
                                "key": "k"}]},
    "dingtalk_robot": {"robots": [{"id": "duty", "name": "值班群", "audiences": ["operators"],
                                   "access_token": "t", "secret": "SECs"}]},
}


def config_with(tmp_path: Path, officers: list[str], escalation: list[str] | None = None, **endpoints: str) -> Config:
    """The example configuration, officers routed to ``officers``, operators also to DingTalk;
    ``escalation``: the channels of the 叫应 steps (default Twilio SMS)."""
    directory = tmp_path / "config"
    shutil.copytree(example_dir(), directory)
    data = yaml.safe_load((directory / "hazwatch.yaml").read_text(encoding="utf-8"))
    data["routing"]["rules"] = [
        {"name": "centre", "audiences": ["operators"], "channels": ["sms", "dingtalk-robot"]},
        {"name": "enterprise", "audiences": ["officers"], "channels": officers},
    ]
    channels = {k: dict(v) for k, v in CHANNELS.items()}
    for section, url in endpoints.items():
        channels[section]["endpoint"] = url
    data["notify"]["channels"] = channels
    if escalation is not None:
        data["notify"]["escalation"]["channels"] = escalation
    (directory / "hazwatch.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_config(directory, env={})


class Clock:
    def __init__(self) -> None:
        self.shift = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return utcnow() + self.shift


class Crash(BaseException):
    """The process dies here (not an Exception: the dispatcher must not handle it)."""


class DiesAfterTheProviderTookIt:
    def __init__(self, channel: Any) -> None:
        self.channel, self.can_look_up = channel, channel.can_look_up

    def send(self, message: Message) -> Outcome:
        self.channel.send(message)
        raise Crash

    def find_sent(self, message: Message, since: dt.datetime) -> str | None:
        return self.channel.find_sent(message, since)


class Webhook(RecordingChannel):
    can_look_up: ClassVar[bool] = False


def red(config: Config, clock: Clock) -> WarningEvent:
    site, sensor_id = SUBJECT.split("/")
    sensor = config.sensor(site, sensor_id)
    assert sensor is not None
    rule = sensor.thresholds[0]
    ts = int(clock().timestamp() * 1000)
    rung = next(s.value for s in rule.ladder if s.level == "red")
    return WarningEvent(episode=episode_id(SUBJECT, rule.rule, ts), site=site, subject=SUBJECT, rule=rule.rule,
                        kind="raised", level="red", previous="normal", ts=ts, emitted_at=ts, value=rung,
                        threshold=rung, unit=sensor.unit, detail={"peak": "red", "raised_ts": ts,
                                                                    "quantity": sensor.quantity})


def outbox(store: Store) -> list[Notification]:
    with store.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def dispatcher(store: Store, config: Config, sms: SmsChannel, clock: Clock, channels: dict[str, Any],
               owner: str = "p0") -> Dispatcher:
    return Dispatcher(store, config, sms, clock=clock, claims=Claims(store, owner, LEASE_S),
                      publish_cap=lambda zone, xml: None, channels=channels)


def run_until(d: Dispatcher, store: Store, done: Any, timeout_s: float = 30.0) -> list[Notification]:
    deadline = time.monotonic() + timeout_s
    while True:
        d.run_once()
        rows = outbox(store)
        if done(rows) or time.monotonic() > deadline:
            return rows


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def aliyun_server() -> Iterator[FakeServer]:
    with aliyun_sms.server() as server:
        yield server


@pytest.fixture(scope="module")
def tencent_server() -> Iterator[FakeServer]:
    with tencent_sms.server() as server:
        yield server


def test_routing_rules_reach_the_new_channels(tmp_path: Path, store: Store, fake: FakeTwilioServer,
                                              channel: SmsChannel, clock: Clock) -> None:
    config = config_with(tmp_path, ["sms-aliyun", "wecom-robot"])
    recording = {"sms-aliyun": RecordingChannel(), "wecom-robot": Webhook(), "dingtalk-robot": Webhook()}
    Intake(store, config, clock).event(red(config, clock))
    rows = outbox(store)
    enterprise = config.site("CH-001").enterprise
    officers = {r.phone for r in config.recipients if r.role == "officer" and r.enterprise == enterprise}
    by_channel = {c: {r.recipient for r in rows if r.channel == c} for c in {r.channel for r in rows}}
    assert by_channel["wecom-robot"] == {"officers-group"} and by_channel["dingtalk-robot"] == {"duty"}
    assert by_channel["sms-aliyun"] == officers and "sms" in by_channel  # operators still by Twilio
    rows = run_until(dispatcher(store, config, channel, clock, recording), store,
                     lambda rs: all(r.status == "sent" for r in rs))
    assert {r.status for r in rows} == {"sent"}
    [aliyun] = recording["sms-aliyun"].calls[:1]
    row = next(r for r in rows if r.channel == "sms-aliyun" and r.recipient == aliyun.to)
    assert aliyun.key == row.key and aliyun.level == "red" and aliyun.kind == "raised"
    assert aliyun.fields["level"] == "红色" and aliyun.fields["site"] == config.site("CH-001").name
    assert aliyun.text == row.body
    [duty] = recording["dingtalk-robot"].calls
    assert duty.to == "duty" and duty.title and "红色" in duty.title
    assert len(recording["sms-aliyun"].calls) == len(by_channel["sms-aliyun"])


def test_escalation_and_reminders_go_out_on_the_configured_channels(tmp_path: Path, store: Store,
                                                                     fake: FakeTwilioServer, channel: SmsChannel,
                                                                     clock: Clock) -> None:
    """An unanswered red: its reminders (officers, operators) and its county 叫应 step go out by
    Aliyun SMS and to the WeCom group of officers, not by Twilio; each once, however often the
    clock looks."""
    config = config_with(tmp_path, ["sms"], escalation=["sms-aliyun", "wecom-robot"])
    recording = {"sms-aliyun": RecordingChannel(), "wecom-robot": Webhook(), "dingtalk-robot": Webhook()}
    intake = Intake(store, config, clock)
    intake.event(red(config, clock))
    d = dispatcher(store, config, channel, clock, recording)
    run_until(d, store, lambda rs: all(r.status == "sent" for r in rs))
    planned = {r.key for r in outbox(store)}
    clock.shift = dt.timedelta(minutes=10, seconds=1)  # reminders at 5 and 10 min, the county step at 10
    assert intake.tick() > 0 and intake.tick() == 0  # planned once
    steps = [r for r in outbox(store) if r.key not in planned]
    site = config.site("CH-001")
    officers = {r.phone for r in config.recipients if r.role == "officer" and r.enterprise == site.enterprise}
    operators = {r.phone for r in config.recipients if r.role == "operator"}
    county = {r.phone for r in config.recipients if r.tier == "county" and r.region == site.region}
    assert {r.channel for r in steps} == {"sms-aliyun", "wecom-robot"}  # never Twilio
    assert {(r.kind, r.recipient) for r in steps if r.channel == "sms-aliyun"} == {
        *(("reminder", p) for p in officers | operators), *(("escalation", p) for p in county)}
    assert {(r.kind, r.recipient) for r in steps if r.channel == "wecom-robot"} == {("reminder", "officers-group")}
    rows = run_until(d, store, lambda rs: all(r.status == "sent" for r in rs))
    assert {r.status for r in rows} == {"sent"}
    aliyun = [m for m in recording["sms-aliyun"].calls if m.kind in ("escalation", "reminder")]
    assert len(aliyun) == len([r for r in steps if r.channel == "sms-aliyun"])
    escalated = next(m for m in aliyun if m.kind == "escalation")
    assert escalated.fields["event"] == "叫应升级" and escalated.to in county and "叫应" in escalated.text
    [group] = [m for m in recording["wecom-robot"].calls if m.kind == "reminder"][:1]
    assert group.to == "officers-group" and group.title


def test_retry_after_is_waited_for(tmp_path: Path, store: Store, fake: FakeTwilioServer,
                                   channel: SmsChannel, clock: Clock) -> None:
    config = config_with(tmp_path, ["sms-aliyun"])
    limited = RecordingChannel(respond=lambda m: Outcome("retry", retry_after_s=3600.0,
                                                         error_code="isv.BUSINESS_LIMIT_CONTROL"))
    Intake(store, config, clock).event(red(config, clock))
    before = utcnow()
    rows = run_until(dispatcher(store, config, channel, clock, {"sms-aliyun": limited, "dingtalk-robot": Webhook()}),
                     store, lambda rs: all(r.status in ("sent", "pending") and r.attempts for r in rs))
    waiting = [r for r in rows if r.channel == "sms-aliyun"]
    assert waiting and {r.status for r in waiting} == {"pending"}
    assert all(r.not_before.replace(tzinfo=dt.UTC) >= before + dt.timedelta(seconds=3600) for r in waiting)
    assert all("isv.BUSINESS_LIMIT_CONTROL" in (r.error or "") for r in waiting)


def test_a_robot_post_lost_in_flight_is_posted_again(tmp_path: Path, store: Store, fake: FakeTwilioServer,
                                                     channel: SmsChannel, clock: Clock) -> None:
    config = config_with(tmp_path, ["sms"])
    duty = Webhook([Outcome("unknown", error="read timeout")])
    Intake(store, config, clock).event(red(config, clock))
    d = dispatcher(store, config, channel, clock, {"dingtalk-robot": duty})
    run_until(d, store, lambda rs: any(r.status == "unknown" for r in rs))
    clock.shift = dt.timedelta(seconds=10)  # past the reconciliation delay
    rows = run_until(d, store, lambda rs: all(r.status == "sent" for r in rs))
    assert next(r for r in rows if r.channel == "dingtalk-robot").status == "sent"
    assert len(duty.sent) == 2  # the documented choice for webhooks: at least once


@pytest.mark.parametrize("provider", ["sms-aliyun", "sms-tencent"])
def test_a_process_dying_after_the_provider_took_the_sms_sends_it_once(
        tmp_path: Path, store: Store, fake: FakeTwilioServer, channel: SmsChannel, clock: Clock,
        aliyun_server: FakeServer, tencent_server: FakeServer, provider: str) -> None:
    server = reset(aliyun_server if provider == "sms-aliyun" else tencent_server)
    config = config_with(tmp_path, [provider], sms_aliyun=aliyun_server.url, sms_tencent=tencent_server.url)
    real = build_routed(config.settings, {})[provider]
    assert isinstance(real, AliyunSms if provider == "sms-aliyun" else TencentSms)
    Intake(store, config, clock).event(red(config, clock))
    planned = [r.id for r in outbox(store) if r.channel == provider]
    robots = {"dingtalk-robot": Webhook()}
    dying = dispatcher(store, config, channel, clock, {provider: DiesAfterTheProviderTookIt(real), **robots}, "dies")
    with pytest.raises(Crash):
        for _ in range(50):
            dying.run_once()
    assert len(accepted(server)) == 1 and [r.status for r in outbox(store) if r.id in planned].count("sending") == 1
    survivor = dispatcher(store, config, channel, clock, {provider: real, **robots}, "survives")
    clock.shift = dt.timedelta(seconds=LEASE_S + 1)  # the dead process's lease runs out
    rows = run_until(survivor, store, lambda rs: all(r.status == "sent" for r in rs if r.id in planned))
    assert {r.status for r in rows if r.id in planned} == {"sent"}
    sent = accepted(server)
    key = "out_id" if provider == "sms-aliyun" else "session_context"
    assert len(sent) == len(planned) and len({m[key] for m in sent}) == len(planned)  # each SMS once


def test_a_routed_channel_without_its_settings_stops_the_service_at_start(tmp_path: Path) -> None:
    config = config_with(tmp_path, ["sms-aliyun"])
    bare = config.settings.model_copy(update={"notify": config.settings.notify.model_copy(
        update={"channels": config.settings.notify.channels.model_copy(update={"sms_aliyun": None})})})
    with pytest.raises(ChannelConfigError, match="sms_aliyun"):
        build_routed(bare, {})


class Unreachable:
    """A provider that cannot be asked for receipts."""

    def __init__(self) -> None:
        self.asked = 0

    def receipt(self, message: Message, sent_after: dt.datetime, provider_id: str) -> None:
        self.asked += 1
        raise ChannelError("connection refused")


@pytest.mark.parametrize("provider", ["sms-aliyun", "sms-tencent"])
@pytest.mark.parametrize("delivered", [True, False], ids=["delivered", "undelivered"])
def test_the_handsets_receipt_is_pulled_into_the_delivery_status(
        tmp_path: Path, store: Store, fake: FakeTwilioServer, channel: SmsChannel, clock: Clock,
        aliyun_server: FakeServer, tencent_server: FakeServer, provider: str, delivered: bool) -> None:
    """Aliyun and Tencent call nobody back: the alerts service asks them (alerts/receipts.py), with
    the real SDKs, and the receipt becomes the row's delivery status, as a Twilio callback does;
    asked again, nothing changes."""
    server = reset(aliyun_server if provider == "sms-aliyun" else tencent_server)
    config = config_with(tmp_path, [provider], sms_aliyun=aliyun_server.url, sms_tencent=tencent_server.url)
    real = build_routed(config.settings, {})[provider]
    officer = next(r.phone for r in config.recipients
                   if r.role == "officer" and r.enterprise == config.site("CH-001").enterprise)
    if not delivered:
        fail(server, "undelivered", count=1, to=officer if provider == "sms-tencent" else officer.removeprefix("+86"))
    Intake(store, config, clock).event(red(config, clock))
    d = dispatcher(store, config, channel, clock, {provider: real, "dingtalk-robot": Webhook()})
    run_until(d, store, lambda rs: all(r.status == "sent" for r in rs))
    [row] = [r for r in outbox(store) if r.channel == provider]
    assert row.delivery_status is None  # no callback: nobody has said yet
    down = Unreachable()
    resting = ReceiptPoller(store, {provider: down}, clock)
    assert resting.poll() == 0 and resting.poll() == 0 and down.asked == 1  # left alone after a failure
    poller = ReceiptPoller(store, {provider: real, "dingtalk-robot": Webhook()}, clock)
    assert set(poller.channels) == {provider}  # robots have no receipts
    assert poller.poll() == 1
    [row] = [r for r in outbox(store) if r.channel == provider]
    assert row.delivery_status == ("delivered" if delivered else "undelivered")
    assert poller.poll() == 0  # nothing is left to ask about
    assert record_receipt(store, provider, str(row.provider_id), str(row.delivery_status), None, utcnow()) == "replayed"
