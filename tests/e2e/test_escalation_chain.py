"""叫应 on real brokers with an injected clock: exact escalation timings, acknowledgement stops
the chain, red reminders, and the timers survive a restart of the alerts service.

The alerts service runs in-process (so the test owns its clock) against a real Kafka broker,
a real MQTT broker, the fake Twilio server over HTTP and a real SQLite database.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kafka import KafkaProducer
from sqlalchemy import func, select

from alerts.channels.sms import SmsChannel
from alerts.episodes import EpisodeService
from alerts.fake_twilio import FakeTwilioServer
from alerts.service import AlertsService
from alerts.store import Notification, Store
from config import load_config
from config.models import Config
from config.topics import WARNINGS
from hazwatch.runtime import EmbeddedStack
from rules.events import WarningEvent, episode_id
from tests.e2e.conftest import config_dir_with, wait_until

T0 = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)  # 10:00 Beijing time, outside quiet hours
OPERATORS = {"+8613800000001", "+8613800000002"}
OFFICER_TD = "+8613900000021"
COUNTY_TD, CITY_TD, PROVINCE_TD = "+8613600000201", "+8613600000202", "+8613600000203"


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def set(self, minutes: float) -> None:
        with self._lock:
            self.now = T0 + dt.timedelta(minutes=minutes)


class Harness:
    def __init__(self, tmp_path: Path, stack: EmbeddedStack, twilio: FakeTwilioServer) -> None:
        self.config_dir = config_dir_with(tmp_path, {
            "kafka": {"bootstrap": stack.kafka_bootstrap}, "mqtt": {"url": stack.mqtt_url},
            "database": {"url": f"sqlite:///{tmp_path / 'alerts.db'}"},
            "sms": {"base_url": twilio.url, "account_sid": twilio.account_sid, "auth_token": twilio.auth_token},
            "notify": {"group_wait_s": 0, "http": {"port": 0}}, "routing": {"quiet_hours": None},
        })
        self.config: Config = load_config(self.config_dir, env={})
        self.twilio = twilio
        self.clock = Clock(T0)
        self.producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        self.service: AlertsService | None = None
        self.thread: threading.Thread | None = None

    def start(self, group: str = "alerts-test") -> None:
        sms = self.config.settings.sms
        self.service = AlertsService(
            self.config, store=Store(self.config.settings.database.url), clock=self.clock, group_id=group,
            sms=SmsChannel(sms.account_sid, sms.auth_token.get_secret_value(), sms.from_number,
                           base_url=sms.base_url, timeout_s=5), seed=1)
        ready = threading.Event()
        self.service.on_assigned = ready.set
        self.thread = threading.Thread(target=self.service.run, daemon=True)
        self.thread.start()
        assert ready.wait(60), "alerts service did not join its consumer group"

    def stop(self) -> None:
        assert self.service is not None and self.thread is not None
        self.service.stop()
        self.thread.join(30)

    def send(self, kind: str, level: str, previous: str, minutes: float, subject: str = "TD-001/PZ-01") -> str:
        raised_ts = int(T0.timestamp() * 1000)
        ts = raised_ts + int(minutes * 60_000)
        event = WarningEvent(episode=episode_id(subject, "phreatic_depth", raised_ts), site="TD-001",
                             subject=subject, rule="phreatic_depth", kind=kind, level=level, previous=previous,
                             ts=ts, emitted_at=ts, value=4.3 if level != "red" else 3.8, threshold=4.4, unit="m",
                             detail={"peak": level, "raised_ts": raised_ts, "quantity": "phreatic_depth"})
        self.producer.send(WARNINGS, key=b"TD-001", value=event.to_json()).get(10)
        return event.episode

    def to(self, phone: str) -> list[str]:
        """Bodies the fake Twilio server accepted for ``phone``, in order."""
        messages = httpx.get(f"{self.twilio.url}/_fake/messages").json()["messages"]
        return [m["body"] for m in messages if m["to"] == phone]

    def planned(self, phone: str) -> int:
        """Notifications recorded for ``phone`` (sent or not): what the pipeline decided."""
        with self.service.store.session() as s:
            return s.scalar(select(func.count()).select_from(Notification)
                            .where(Notification.recipient == phone)) or 0


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with EmbeddedStack(tmp_path) as stack, FakeTwilioServer() as twilio:
        h = Harness(tmp_path, stack, twilio)
        h.start()
        try:
            yield h
        finally:
            h.stop()


pytestmark = pytest.mark.e2e


def test_escalation_chain_exact_timings_and_ack_stops_it(harness: Harness) -> None:
    h = harness
    episode = h.send("raised", "orange", "normal", 0)
    wait_until(lambda: h.to(OFFICER_TD) and all(h.to(p) for p in OPERATORS), 30, "the orange SMS")
    assert h.to(COUNTY_TD) == []

    h.clock.set(9 + 59 / 60)  # 9:59 after the warning: not yet
    h.service.intake.tick()
    assert h.planned(COUNTY_TD) == 0

    h.clock.set(10)  # 10:00: the county regulator hears that the enterprise has not answered
    wait_until(lambda: h.to(COUNTY_TD), 30, "the county escalation at 10:00")
    assert "叫应" in h.to(COUNTY_TD)[0] or "未" in h.to(COUNTY_TD)[0]
    assert h.to(CITY_TD) == []

    h.clock.set(20)  # 20:00: the city
    wait_until(lambda: h.to(CITY_TD), 30, "the city escalation at 20:00")
    assert len(h.to(COUNTY_TD)) == 1, "the county is not told twice"

    EpisodeService(h.service.store).acknowledge(episode, by="安全员赵敏", now=h.clock())
    h.clock.set(45)  # long past the province step: acknowledgement stopped the chain
    assert h.service.intake.tick() == 0
    assert h.planned(PROVINCE_TD) == 0
    assert h.to(PROVINCE_TD) == []


def test_red_reminders_every_five_minutes_until_acknowledged(harness: Harness) -> None:
    h = harness
    episode = h.send("raised", "red", "normal", 0)
    wait_until(lambda: h.to(OFFICER_TD), 30, "the red SMS")
    assert len(h.to(OFFICER_TD)) == 1
    h.clock.set(4.9)
    h.service.intake.tick()
    assert h.planned(OFFICER_TD) == 1
    h.clock.set(5)
    wait_until(lambda: len(h.to(OFFICER_TD)) == 2, 30, "reminder 1 at 5:00")
    h.clock.set(10)
    wait_until(lambda: len(h.to(OFFICER_TD)) == 3, 30, "reminder 2 at 10:00")
    assert all(len(h.to(p)) == 3 for p in OPERATORS), "operators are reminded too"
    EpisodeService(h.service.store).acknowledge(episode, by="安全员赵敏", now=h.clock())
    h.clock.set(30)
    assert h.service.intake.tick() == 0, "no step is due after the acknowledgement"
    assert len(h.to(OFFICER_TD)) == 3


def test_timers_survive_a_restart(harness: Harness) -> None:
    h = harness
    h.send("raised", "orange", "normal", 0)
    wait_until(lambda: h.to(OFFICER_TD), 30, "the orange SMS")
    h.clock.set(10)
    wait_until(lambda: h.to(COUNTY_TD), 30, "county at 10:00")
    h.stop()  # the service goes away; the clock moves on while it is down
    h.clock.set(25)
    h.start(group="alerts-test")
    wait_until(lambda: h.to(CITY_TD), 30, "the city step, due while the service was down")
    assert len(h.to(COUNTY_TD)) == 1, "the county step is not repeated after the restart"
    assert len(h.to(OFFICER_TD)) == 1, "the warning itself is not repeated after the restart"
