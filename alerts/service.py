"""The alerts service: warning events -> outbox -> SMS (twilio) and CAP broadcasts (MQTT).

Two loops share one process:

1. *intake*: consume ``hazwatch.warnings`` (kafka-python, consumer group ``hazwatch-alerts``),
   plan the notifications of each event and record them in the outbox under their idempotency
   keys; commit the Kafka offsets only after the outbox has them. A redelivered event plans the
   same keys and adds nothing.
2. *dispatch*: send what the outbox holds, oldest first. A row is marked ``sending`` before the
   provider is called, so a crash in between leaves evidence: at start such rows become
   ``unknown`` and are reconciled with the provider's record instead of being sent again.
   Retryable errors back off exponentially with jitter; permanent ones are recorded as failed.

Each final result is also produced to ``hazwatch.deliveries`` (keyed by episode).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable

import orjson
import paho.mqtt.client as mqtt
from kafka import KafkaConsumer, KafkaProducer

from alerts.cap import build_cap, validate_cap
from alerts.channels.sms import SmsChannel
from alerts.outbox import Notification, Outbox, utcnow
from alerts.plan import plan
from alerts.render import render_sms
from alerts.segments import segments
from config.models import Config
from config.topics import DEADLETTER, DELIVERIES, WARNINGS
from config.urls import mqtt_host_port
from rules.events import WarningEvent

__all__ = ["AlertsService", "backoff_s"]

log = logging.getLogger("hazwatch.alerts")

RECONCILE_AFTER_S = 5.0


def backoff_s(attempts: int, rng: random.Random, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    step = min(cap_s, base_s * 2 ** max(attempts - 1, 0))
    return step / 2 + rng.uniform(0, step / 2)


class CapPublisher:
    """Publishes CAP documents to ``hw/v1/broadcast/{zone}/cap`` at QoS 1 and waits for PUBACK."""

    def __init__(self, url: str, client_id: str = "hazwatch-alerts-cap") -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.reconnect_delay_set(1, 10)
        host, port = mqtt_host_port(url)
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def publish(self, zone: str, xml: bytes, timeout_s: float = 10.0) -> None:
        info = self.client.publish(f"hw/v1/broadcast/{zone}/cap", xml, qos=1)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError(f"CAP to zone {zone} not acknowledged by the MQTT broker within {timeout_s} s")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class AlertsService:
    def __init__(
        self,
        config: Config,
        *,
        outbox: Outbox | None = None,
        sms: SmsChannel | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        group_id: str = "hazwatch-alerts",
        seed: int | None = None,
    ) -> None:
        s = config.settings
        self.config = config
        self.outbox = outbox or Outbox(s.database.url)
        self.sms = sms or SmsChannel(s.sms.account_sid, s.sms.auth_token.get_secret_value(), s.sms.from_number,
                                     base_url=s.sms.base_url)
        self.clock = clock
        self.group_id = group_id
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.cap: CapPublisher | None = None
        self.producer: KafkaProducer | None = None
        self.on_assigned: Callable[[], None] | None = None

    # -- intake -------------------------------------------------------------------------------
    def intake(self, raw: bytes) -> int:
        """Plan and record the notifications of one warning event. Returns how many were new."""
        event = WarningEvent.from_json(raw)
        return self.outbox.record(plan(self.config, event))

    def _consume(self, consumer: KafkaConsumer) -> None:
        batches = consumer.poll(timeout_ms=200, max_records=500)
        if not batches:
            return
        for records in batches.values():
            for rec in records:
                try:
                    new = self.intake(rec.value)
                    log.info("event %s: %d new notification(s)", rec.value[:120], new)
                except Exception as exc:  # noqa: BLE001 - a bad event is dead-lettered, never fatal
                    log.exception("bad warning event at %s", rec.offset)
                    self._produce(DEADLETTER, None, {"source": "alerts", "reason": f"bad warning event: {exc!r}",
                                                     "payload": rec.value.decode("utf-8", "replace")})
        consumer.commit()  # only after the outbox holds every intent

    # -- dispatch -----------------------------------------------------------------------------
    def recover(self) -> int:
        """After a crash: rows left in ``sending`` may or may not have gone out -> reconcile."""
        stuck = self.outbox.find(status="sending")
        for n in stuck:
            self.outbox.update(n.id, status="unknown", next_attempt_at=self.clock())
        return len(stuck)

    def dispatch_due(self) -> int:
        done = 0
        for n in self.outbox.due(self.clock()):
            if self.stopping.is_set():
                break
            if self.outbox.blocked_by_earlier(n):
                continue
            try:
                (self._dispatch_sms if n.channel == "sms" else self._dispatch_cap)(n)
                done += 1
            except Exception as exc:  # noqa: BLE001 - keep the row, try again later
                log.exception("dispatch of notification %s failed", n.id)
                self.outbox.update(n.id, status="pending", error=repr(exc),
                                   next_attempt_at=self.clock() + dt.timedelta(seconds=backoff_s(n.attempts + 1, self.rng)))
        return done

    def _dispatch_sms(self, n: Notification) -> None:
        event = WarningEvent.from_json(n.event)
        if n.body is None:
            site = self.config.site(event.site)
            body = render_sms(event, site, self.config.sensor(event.site, event.sensor), role=n.role,
                              language=n.language, tz=self.config.settings.timezone)
            self.outbox.update(n.id, body=body, segments=segments(body))
            n.body = body
        if n.status == "unknown":
            sid = self.sms.find_sent(n.recipient, n.body, n.created_at - dt.timedelta(minutes=1))
            if sid:
                return self._finish(n, "sent", provider_id=sid, sent_at=self.clock())
        self.outbox.update(n.id, status="sending", attempts=n.attempts + 1)
        result = self.sms.send(n.recipient, n.body)
        now = self.clock()
        if result.outcome == "sent":
            self._finish(n, "sent", provider_id=result.sid, sent_at=now)
        elif result.outcome == "failed":
            self._finish(n, "failed", error_code=result.error_code, error=result.error)
        elif result.outcome == "retry":
            delay = backoff_s(n.attempts + 1, self.rng)
            log.warning("SMS %s to %s: retry in %.1f s (%s %s)", n.id, n.recipient, delay, result.error_code, result.error)
            self.outbox.update(n.id, status="pending", error_code=result.error_code, error=result.error,
                               next_attempt_at=now + dt.timedelta(seconds=delay))
        else:  # unknown: never resend blindly after a timeout
            self.outbox.update(n.id, status="unknown", error=result.error,
                               next_attempt_at=now + dt.timedelta(seconds=RECONCILE_AFTER_S))

    def _dispatch_cap(self, n: Notification) -> None:
        event = WarningEvent.from_json(n.event)
        site, zone = self.config.site(event.site), self.config.zone(n.recipient)
        sent = self.clock().replace(microsecond=0)
        if event.kind == "cleared":
            alerts = [a for a in self.outbox.find(episode=n.episode, channel="cap", recipient=n.recipient,
                                                  status="sent") if a.kind != "cleared"]
            if not alerts:
                return self._finish(n, "failed", error="no broadcast alert to clear")
            refs = [(self.config.settings.cap.sender, a.provider_id, a.sent_at) for a in alerts]
            ident, xml = build_cap(event, site, zone, self.config.settings.cap, msg_type="Update", sent=sent,
                                   seq=n.id % 10, references=refs, response_type="AllClear",
                                   tz=self.config.settings.timezone)
        else:
            ident, xml = build_cap(event, site, zone, self.config.settings.cap, msg_type="Alert", sent=sent,
                                   seq=n.id % 10, tz=self.config.settings.timezone)
        validate_cap(xml)
        self.outbox.update(n.id, status="sending", attempts=n.attempts + 1, body=xml.decode(), provider_id=ident)
        assert self.cap is not None
        self.cap.publish(n.recipient, xml)
        n.body = xml.decode()
        self._finish(n, "sent", provider_id=ident, sent_at=sent)

    def _finish(self, n: Notification, status: str, **values: object) -> None:
        self.outbox.update(n.id, status=status, **values)
        record = {"type": "sms" if n.channel == "sms" else "broadcast", "key": n.key, "episode": n.episode,
                  "site": n.site, "kind": n.kind, "level": n.level, "status": status,
                  "provider_id": values.get("provider_id"), "error": values.get("error")}
        if n.channel == "sms":
            record.update(to=n.recipient, role=n.role, body=n.body, segments=segments(n.body or ""))
        else:
            record.update(zone=n.recipient, cap=n.body)
        self._produce(DELIVERIES, n.episode.encode(), record)
        log.info("%s %s -> %s: %s", record["type"], n.key, n.recipient, status)

    def _produce(self, topic: str, key: bytes | None, value: dict) -> None:
        if self.producer is None:
            return
        try:
            self.producer.send(topic, key=key, value=orjson.dumps(value))
        except Exception:  # noqa: BLE001 - the outbox row is the record; the topic is a feed
            log.exception("could not produce to %s", topic)

    # -- composition --------------------------------------------------------------------------
    def run(self) -> None:
        s = self.config.settings
        bootstrap = s.kafka.bootstrap
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        self.cap = CapPublisher(s.mqtt.url)
        consumer = KafkaConsumer(
            WARNINGS, bootstrap_servers=bootstrap, group_id=self.group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000,
            max_poll_interval_ms=60000, client_id="hazwatch-alerts",
        )
        log.info("alerts: %d notification(s) to reconcile after restart", self.recover())
        try:
            while not self.stopping.is_set():
                try:
                    self._consume(consumer)
                    if self.on_assigned is not None and consumer.assignment():
                        self.on_assigned()
                        self.on_assigned = None
                except Exception:  # noqa: BLE001 - Kafka hiccup: the offsets were not committed
                    log.exception("intake failed; retrying")
                    time.sleep(1)
                self.dispatch_due()
        finally:
            consumer.close()
            self.producer.flush(5)
            self.producer.close(5)
            self.cap.close()

    def stop(self) -> None:
        self.stopping.set()
