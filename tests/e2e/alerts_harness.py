"""An in-process alerts service with an injected clock, on real brokers.

The alerts service runs in a thread of the test (so the test owns its clock) against a real
Kafka broker, a real MQTT broker, the fake Twilio server over HTTP and a real SQLite database.
Warning events are produced to ``hazwatch.warnings`` as the rules worker would.
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
from alerts.fakes.twilio import FakeTwilioServer
from alerts.service import AlertsService
from alerts.store import Notification, Store
from config import load_config
from config.models import Config
from config.topics import WARNINGS
from config.urls import mqtt_url_as
from hazwatch.runtime import EmbeddedStack
from formats.warning import WarningEvent, episode_id
from tests.e2e.conftest import config_dir_with

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
    def __init__(self, tmp_path: Path, stack: EmbeddedStack, twilio: FakeTwilioServer,
                 notify: dict | None = None) -> None:
        self.config_dir = config_dir_with(tmp_path, {
            "kafka": {"bootstrap": stack.kafka_bootstrap}, "mqtt": {"url": mqtt_url_as(stack.mqtt_url, *stack.mqtt_login("hazwatch-alerts"))},
            "database": {"url": f"sqlite:///{tmp_path / 'alerts.db'}"},
            "sms": {"base_url": twilio.url, "account_sid": twilio.account_sid, "auth_token": twilio.auth_token},
            "notify": {"group_wait_s": 0, "http": {"port": 0}, **(notify or {})},
            "routing": {"quiet_hours": None},
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

    def send(self, kind: str, level: str, previous: str, minutes: float, subject: str = "TD-001/PZ-01",
             value: float | None = None, raised_min: float = 0) -> str:
        """Produce a warning event of ``subject`` (a TD-001 sensor) as the rules worker would."""
        site, sensor_id = subject.split("/")
        sensor = self.config.sensor(site, sensor_id)
        assert sensor is not None
        rule = sensor.thresholds[0]
        raised_ts = int(T0.timestamp() * 1000) + int(raised_min * 60_000)
        ts = int(T0.timestamp() * 1000) + int(minutes * 60_000)
        rung = next((s.value for s in rule.ladder if s.level == level), rule.ladder[0].value)
        event = WarningEvent(episode=episode_id(subject, rule.rule, raised_ts), site=site,
                             subject=subject, rule=rule.rule, kind=kind, level=level, previous=previous,
                             ts=ts, emitted_at=ts, value=rung if value is None else value, threshold=rung,
                             unit=sensor.unit, detail={"peak": level, "raised_ts": raised_ts,
                                                       "quantity": sensor.quantity})
        self.producer.send(WARNINGS, key=site.encode(), value=event.to_json()).get(10)
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
    with EmbeddedStack(tmp_path, disposable=True) as stack, FakeTwilioServer() as twilio:
        h = Harness(tmp_path, stack, twilio)
        h.start()
        try:
            yield h
        finally:
            h.stop()


@pytest.fixture
def harness_factory(tmp_path: Path) -> Iterator:
    """``harness_factory(notify={...})`` starts brokers, fake Twilio and the alerts service."""
    started: list[tuple[Harness, EmbeddedStack, FakeTwilioServer]] = []

    def make(notify: dict | None = None) -> Harness:
        stack = EmbeddedStack(tmp_path, disposable=True).start()
        twilio = FakeTwilioServer().start()
        h = Harness(tmp_path, stack, twilio, notify)
        started.append((h, stack, twilio))
        h.start()
        return h

    yield make
    for h, stack, twilio in started:
        h.stop()
        twilio.stop()
        stack.stop()
