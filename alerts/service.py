"""The alerts service: the I/O shell around :mod:`alerts.pipeline` and :mod:`alerts.dispatch`.

One process, one loop, in this order each pass:

1. consume ``hazwatch.warnings`` and ``hazwatch.health`` (kafka-python, group ``hazwatch-alerts``);
   each event is recorded in the store (lifecycle + outbox) in one transaction; the Kafka offsets
   are committed only after that, so a crash re-reads events that the store then recognises;
2. tick the 叫应 timers on the clock (not on the arrival of readings): steps due by now are
   planned; the timers are derived from stored timestamps, so they survive a restart;
3. dispatch what is due.

An HTTP server in a thread takes Twilio status callbacks and serves the CAP Atom feed.
Every final result is also produced to ``hazwatch.deliveries`` (keyed by episode).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from kafka import KafkaConsumer, KafkaProducer
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from alerts.channels.base import Channel
from alerts.channels.registry import build_routed
from config.channels import ChannelConfigError
from alerts.channels.sms import SmsChannel
from alerts.dispatch import Dispatcher
from alerts.http import create_alerts_api, serve_in_thread, status_callback_url
from alerts.ops import OUTBOX, database_check
from alerts.pipeline import Intake
from alerts.receipts import ReceiptPoller
from alerts.store import Action, Fault, Notification, Store, utcnow
from config.models import Config
from config.reload import LOADED_AT, Report, applied, refused, reload_config
from config.mqtt import MqttSettings, configure_client
from config.topics import DEADLETTER, DELIVERIES, HEALTH, WARNINGS
from formats.health import HealthEvent, SensorHealth
from formats.health import decode as decode_health
from hazwatch.control import ControlListener
from hazwatch.ops import Check, KafkaCheck
from formats.warning import WarningEvent

__all__ = ["AlertsService", "CapPublisher", "unreloadable"]

log = logging.getLogger("hazwatch.alerts")

TIMERS_S = 0.5
"""When no event came, the escalation timers and the outbox (retries, grouping waits, other
processes' rows) are looked at this often; after an event, at once. Each look is a few database
round trips: at the former five a second they cost an idle alerts service 12 % of a core."""


class CapPublisher:
    """Publishes CAP documents to ``hw/v1/broadcast/{zone}/cap`` at QoS 1 and waits for PUBACK."""

    def __init__(self, mqtt_settings: MqttSettings | str, client_id: str = "hazwatch-alerts-cap") -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.reconnect_delay_set(1, 10)
        # production's account: hazwatch-alerts (deploy/mosquitto/acl); TLS for an mqtts:// URL
        host, port = configure_client(self.client, mqtt_settings)
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()

    def publish(self, zone: str, xml: bytes, timeout_s: float = 10.0) -> None:
        info = self.client.publish(f"hw/v1/broadcast/{zone}/cap", xml, qos=1)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError(f"CAP to zone {zone} not acknowledged by the MQTT broker within {timeout_s} s")

    def publish_audio(self, zone: str, wav: bytes, timeout_s: float = 10.0) -> None:
        """The spoken broadcast for loudspeaker gateways: ``hw/v1/broadcast/{zone}/audio`` (WAV)."""
        info = self.client.publish(f"hw/v1/broadcast/{zone}/audio", wav, qos=1)
        info.wait_for_publish(timeout_s)

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes the network thread, which loop_stop() joins at once
        self.client.loop_stop()


def unreloadable(old: Config, new: Config) -> str | None:
    """What the alerts service cannot change while it runs, or None."""
    a, b = old.settings, new.settings
    fixed = ("database", "kafka", "mqtt", "sms", "sms_fallback")
    if changed := [k for k in fixed if getattr(a, k) != getattr(b, k)]:
        return f"the {', '.join(changed)} settings changed: restart the alerts service to apply them"
    if (a.notify.http, a.notify.sms_timeout_s) != (b.notify.http, b.notify.sms_timeout_s):
        return "notify.http or notify.sms_timeout_s changed: restart the alerts service to apply them"
    return None


class AlertsService:
    def __init__(self, config: Config, *, store: Store | None = None, sms: SmsChannel | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, group_id: str = "hazwatch-alerts",
                 seed: int | None = None, data_dir: Path | None = None,
                 channels: Mapping[str, Channel] | None = None, config_dir: Path | None = None) -> None:
        s = config.settings
        self.config = config
        self.config_dir = config_dir  # read again on SIGHUP or a request on the control topic (:meth:`reload`)
        self.reload_requested = False
        self.control: ControlListener | None = None
        self.dispatcher: Dispatcher | None = None
        self.receipts: ReceiptPoller | None = None
        self.started_ms = int(time.time() * 1000)
        LOADED_AT.set(time.time())
        self.store = store or Store(s.database.url)
        self.sms = sms or SmsChannel(s.sms.account_sid, s.sms.auth_token.get_secret_value(), s.sms.from_number,
                                     base_url=s.sms.base_url, timeout_s=s.notify.sms_timeout_s)
        fb = s.sms_fallback
        self.fallback = fb and SmsChannel(fb.account_sid, fb.auth_token.get_secret_value(), fb.from_number,
                                          base_url=fb.base_url, timeout_s=s.notify.sms_timeout_s)
        # the other channels its routing rules name (alerts.channels.registry), built now: one not
        # configured stops the service here, not at the first warning
        self.channels = dict(build_routed(s, os.environ) if channels is None else channels)
        self.own_channels = channels is None  # built here, so built again from a reloaded configuration
        self.clock = clock
        self.group_id = group_id
        self.rng = random.Random(seed)
        self.data_dir = data_dir
        self.intake = Intake(self.store, config, clock)
        self.stopping = threading.Event()
        self.producer: KafkaProducer | None = None
        self.on_assigned: Callable[[], None] | None = None
        self.http_port: int | None = None

    # -- intake -------------------------------------------------------------------------------
    def handle(self, topic: str, raw: bytes) -> None:
        if topic == WARNINGS:
            recorded = self.intake.event(WarningEvent.from_json(raw))
            log.info("warning %s: %s", raw[:100], recorded if recorded else "duplicate, ignored")
        else:
            self._health(decode_health(raw))

    def _health(self, event: HealthEvent) -> None:
        """Sensor faults from the rules' data-quality checks: inhibit that subject's warnings."""
        if not isinstance(event, SensorHealth) or not event.subject or event.state not in ("fault", "ok"):
            return  # presence, spikes and maintenance carry no subject fault
        subject = event.subject
        with self.store.session.begin() as s:
            row = s.get(Fault, subject)
            if event.state == "fault" and row is None:
                s.add(Fault(subject=subject, site=event.site, check=event.check, since=self.clock()))
            elif event.state == "ok" and row is not None and not event.active:
                s.delete(row)  # healthy again only when no check is still in fault

    def _consume(self, consumer: KafkaConsumer) -> int:
        """Handle what one poll brings; returns how many events."""
        batches = consumer.poll(timeout_ms=int(TIMERS_S * 1000), max_records=500)
        if not batches:
            return 0
        done: dict[Any, int] = {}  # partition -> offset of the next unhandled record
        try:
            for tp, records in batches.items():
                for rec in records:
                    try:
                        self.handle(rec.topic, rec.value)
                    except (SQLAlchemyError, OSError):
                        raise  # the store is down: not the event's fault, read it again later
                    except Exception as exc:  # noqa: BLE001 - a bad event is dead-lettered, never fatal
                        log.exception("bad event on %s at %s", rec.topic, rec.offset)
                        self._produce(DEADLETTER, None, {"source": "alerts", "topic": rec.topic,
                                                         "reason": f"bad event: {exc!r}",
                                                         "payload": rec.value.decode("utf-8", "replace")})
                    done[tp] = rec.offset + 1
        except (SQLAlchemyError, OSError):
            for tp, records in batches.items():  # rewind every partition to its first unhandled record
                consumer.seek(tp, done.get(tp, records[0].offset))
            consumer.commit()
            raise
        consumer.commit()  # only after the store holds every event
        return sum(len(records) for records in batches.values())

    def _produce(self, topic: str, key: bytes | None, value: dict[str, Any]) -> None:
        if self.producer is None:
            return
        try:
            self.producer.send(topic, key=key, value=orjson.dumps(value))
        except Exception:  # noqa: BLE001 - the store is the record; the topic is a feed
            log.exception("could not produce to %s", topic)

    def _on_result(self, record: dict[str, Any]) -> None:
        self._produce(DELIVERIES, record["episode"].encode(), record)
        log.info("%s %s -> %s: %s", record["type"], record["kind"], record.get("to") or record.get("zone"),
                 record["status"])

    # -- reloading (SIGHUP, or a reload asked for in the console) --------------------------------
    def request_reload(self) -> None:
        self.reload_requested = True

    def reload(self) -> bool:
        """Validate the configuration directory again and, unless refused (config/reload.py and
        :func:`unreloadable`), put it in force from the next event: sites, zones, recipients,
        routing, escalation, inhibition, grouping and rate limits, and the channels the routing
        names. A reload not asked for in the console (SIGHUP) is recorded in the audit table here,
        as ``config_reload`` by ``SIGHUP``; the console records its own with the admin's name."""
        self.reload_requested = False
        requests = self.control.take_pending() if self.control is not None else []
        report: Report | None = self.control.reporter(requests) if self.control is not None else None
        try:
            return self._reload(requests, report)
        except Exception as exc:
            if report is not None:  # whoever asked hears of it
                report("refused", f"the reload failed: {exc!r}")
            raise

    def _reload(self, requests: list[dict[str, Any]], report: Report | None) -> bool:
        new = reload_config(self.config_dir, self.config, service="alerts", fixed=unreloadable, report=report)
        if new is None:
            return False
        channels = self.channels
        if self.own_channels:
            try:
                channels = build_routed(new.settings, os.environ)
            except ChannelConfigError as exc:
                refused("alerts", self.config_dir, f"a channel the routing names is not configured: {exc}", report)
                return False
        # a channel the new configuration no longer names still sends (and reconciles) what it has
        # in the outbox: its rows would wait for a channel that is never built again
        with self.store.session() as s:
            still = set(s.scalars(select(Notification.channel).where(
                Notification.status.in_(("pending", "sending", "unknown"))).distinct()))
        channels = {**{n: c for n, c in self.channels.items() if n in still}, **channels}
        old, self.config, self.channels = self.config, new, dict(channels)
        self.intake.config = new
        if self.dispatcher is not None:
            self.dispatcher.reconfigure(new, self.channels)
        if self.receipts is not None:
            self.receipts.use(self._receipt_channels(new))
        lines = applied("alerts", self.config_dir, old, new, report)
        if not requests:  # by SIGHUP: the console records the reloads it asked for
            with self.store.session.begin() as s:
                s.add(Action(action="config_reload", actor="SIGHUP", at=self.clock(),
                             text="; ".join(lines) or "no change"))
        return True

    def _receipt_channels(self, config: Config) -> Mapping[str, Channel]:
        """The channels the receipt thread asks: its own clients when the service built its
        channels, else the ones it was given (tests)."""
        return build_routed(config.settings, os.environ) if self.own_channels else self.channels

    # -- composition --------------------------------------------------------------------------
    def run(self) -> None:
        s = self.config.settings
        # 1. HTTP: status callbacks and the CAP feed (port 0 picks a free port)
        checks: dict[str, Check] = {"database": lambda: database_check(self.store)}
        served = serve_in_thread(create_alerts_api(self.store, lambda: self.config, clock=self.clock, checks=checks),
                                 s.notify.http.host, s.notify.http.port)
        self.http_port = served.port
        callback = status_callback_url(self.config, served.url)
        # 2. outputs: deliveries feed, CAP over MQTT, SMS
        self.producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap, acks="all", enable_idempotence=True,
                                      linger_ms=5)
        cap = CapPublisher(s.mqtt)
        kafka_check = KafkaCheck(s.kafka.bootstrap, client_id="hazwatch-alerts-health")
        checks["kafka"] = kafka_check
        checks["mqtt"] = lambda: None if cap.client.is_connected() else "the CAP publisher is not connected to MQTT"
        OUTBOX.watch(self.store)
        dispatcher = Dispatcher(self.store, self.config, self.sms, publish_cap=cap.publish, clock=self.clock,
                                on_result=self._on_result, status_callback=callback, rng=self.rng,
                                audio_dir=self.data_dir, publish_audio=cap.publish_audio, fallback=self.fallback,
                                channels=self.channels)
        self.dispatcher = dispatcher
        # Aliyun's and Tencent's receipts, asked in a thread with clients of its own
        self.receipts = ReceiptPoller(self.store, self._receipt_channels(self.config), self.clock).start()
        if self.config_dir is not None:  # a reload asked for in the console (hazwatch/control.py)
            self.control = ControlListener(s.kafka.bootstrap, "alerts", lambda _request: self.request_reload(),
                                           since_ms=self.started_ms).start()
        log.info("alerts: claiming outbox rows as %s", dispatcher.claims.owner)
        log.info("alerts: %d notification(s) to reconcile after restart", dispatcher.recover())
        # 3. inputs
        consumer = KafkaConsumer(
            WARNINGS, HEALTH, bootstrap_servers=s.kafka.bootstrap, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=6000,
            heartbeat_interval_ms=1000, max_poll_interval_ms=120000, client_id="hazwatch-alerts",
            fetch_max_wait_ms=100,  # Tansu answers a fetch only when this runs out (rules/worker.py)
        )
        # the group's leader assigns only partitions its metadata knows, and kafka-python refreshes
        # metadata every 5 min: joining before the topics' partitions are known left this service
        # with no assignment for that long (seen right after the topics were created)
        while not self.stopping.is_set() and not all(consumer.partitions_for_topic(t) for t in (WARNINGS, HEALTH)):
            log.warning("alerts: waiting for the partitions of %s and %s", WARNINGS, HEALTH)
            self.stopping.wait(0.5)
        next_timers = 0.0
        try:
            while not self.stopping.is_set():
                if self.reload_requested:
                    try:
                        self.reload()
                    except Exception:  # noqa: BLE001 - e.g. the audit record: the reload stands or not, logged
                        log.exception("alerts: reload failed")
                handled = 0
                try:
                    handled = self._consume(consumer)
                    if self.on_assigned is not None and consumer.assignment():
                        self.on_assigned()
                        self.on_assigned = None
                except Exception:  # noqa: BLE001 - Kafka or store hiccup: unhandled events are read again
                    log.exception("intake failed; retrying")
                    time.sleep(1)
                if not handled and time.monotonic() < next_timers:
                    continue  # nothing new, and the timers were looked at less than TIMERS_S ago
                next_timers = time.monotonic() + TIMERS_S
                try:
                    self.intake.tick()
                except Exception:  # noqa: BLE001 - the next pass plans the same steps again
                    log.exception("escalation timers failed")
                try:
                    dispatcher.run_once()
                except Exception:  # noqa: BLE001 - e.g. the store is down: nothing is lost, try again
                    log.exception("dispatch failed; retrying")
                    time.sleep(1)
        finally:
            if self.control is not None:
                self.control.stop()
            if self.receipts is not None:
                self.receipts.stop()
            consumer.close()
            self.producer.flush(5)
            self.producer.close(5)
            cap.close()
            served.stop()
            kafka_check.close()
            OUTBOX.forget(self.store)

    def stop(self) -> None:
        self.stopping.set()
