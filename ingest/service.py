"""The ingest service: MQTT (paho) -> validate -> Kafka (kafka-python).

Delivery: messages are received at QoS 1 with manual acknowledgement, and a message is
acknowledged to the MQTT broker only after Kafka has acknowledged everything it produced (valid
readings and dead letters). A Kafka outage therefore stalls ingest and the broker keeps the
messages (persistent session); nothing is dropped. No input can crash the service: every
rejected message goes to ``hazwatch.deadletter`` with its reason and is counted.

Broker restarts (docs/ARCHITECTURE.md §4, §5): ingest's session is persistent
(``clean_session=False``) and by default subscribes without ``$share/``, because Mosquitto keeps a
plain subscription across a restart and queues for it while ingest is away, but forgets a shared
one. A message is acknowledged only on the connection it came on; one that comes again (the broker
restarted from its last save, a device resent it) is recognised by :mod:`ingest.dedup` and not
sent to Kafka twice. Ingest reconnects within 0.25-2 s.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import paho.mqtt.client as mqtt
from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Counter

from config.models import Config
from config.topics import DEADLETTER, HEALTH, READINGS
from config.urls import mqtt_host_port, mqtt_login
from ingest.deadletter import deadletter_record
from ingest.dedup import RecentMessages, message_key
from ingest.mqtt_client import DrainingClient
from ingest.delivery import Record, deliver
from ingest.validate import Batch, Reject, Status, on_contract, validate_message

__all__ = ["IngestService", "SUBSCRIPTIONS"]

log = logging.getLogger("hazwatch.ingest")

SUBSCRIPTIONS = ("hw/v1/#",)
"""Everything under the contract's root, so that a message on a topic outside the contract (an id
with a ``/`` in it, a misspelt kind) is dead-lettered and counted instead of vanishing."""
LEGACY_SUBSCRIPTIONS = ("hw/v1/+/+/reading", "hw/v1/+/batch", "hw/v1/+/status")
"""What ingest subscribed to before: removed from a persistent session that still has them."""
BROADCASTS = "hw/v1/broadcast/"
"""hazwatch's own CAP broadcasts and audio (alerts): not input, acknowledged and skipped."""

READINGS_TOTAL = Counter("hazwatch_ingest_readings_total", "Valid readings produced to Kafka")
REJECTED_TOTAL = Counter("hazwatch_ingest_rejected_total", "Rejected inputs sent to the dead-letter topic")
OFF_CONTRACT_TOTAL = Counter("hazwatch_ingest_off_contract_total",
                             "Messages on a topic outside the hw/v1 contract (each dead-lettered)")
REDELIVERED_TOTAL = Counter("hazwatch_ingest_redelivered_total",
                            "Reading and batch messages received again and not sent to Kafka again")

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 2.0
"""Ingest's reconnect back-off, doubling from the minimum (seconds): short, so that after a broker
restart ingest is back as soon as the devices are (paho's default is 1 to 120 s)."""
MERGE_MAX = 2000
"""Readings of one site merged into one Kafka record at most (a record stays far below the
producer's 1 MiB request limit: a gateway batch of 10,000 readings is never merged with another)."""
_DEDUPLICATED = ("reading", "batch")  # status messages repeat legitimately (online, offline, online)


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ms: int
    connection: int
    """Which MQTT connection brought it: a PUBACK is only valid on that one."""


class IngestService:
    def __init__(self, config: Config, *, client_id: str = "hazwatch-ingest-1") -> None:
        self.config = config
        self.client_id = client_id
        self.recent = RecentMessages()
        self.redelivered = 0
        self._quiet_until = 0.0
        self._connection = 0
        self.inbox: queue.Queue[_Inbound] = queue.Queue()
        self.stopping = threading.Event()
        self.produced = 0
        self.rejected = 0
        self.off_contract = 0
        self._producer: KafkaProducer | None = None
        self._mqtt: mqtt.Client | None = None
        self.on_subscribed: Callable[[], None] | None = None

    # -- wiring -------------------------------------------------------------------------------
    def _connect_kafka(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self.config.settings.kafka.bootstrap,
            acks="all",
            enable_idempotence=True,  # a retried batch is stored once, not again
            retries=2147483647,  # an outage delays, never drops
            max_in_flight_requests_per_connection=1,  # keep per-site order across retries
            linger_ms=5,
            max_block_ms=5000,
            # how long the producer retries a record by itself before giving it back as failed:
            # long, since a record given back is sent again (ingest.delivery)
            delivery_timeout_ms=600_000,
            request_timeout_ms=30_000,
            client_id=self.client_id,
        )

    def _connect_mqtt(self) -> mqtt.Client:
        client = DrainingClient(  # keeps what a dying broker had already sent (ingest/mqtt_client.py)
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False, manual_ack=True
        )
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        # paho annotates the delays as int; it computes with floats
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]
        url = self.config.settings.mqtt.url
        if login := mqtt_login(url):  # production's account: hazwatch-ingest (deploy/mosquitto/acl)
            client.username_pw_set(*login)
        host, port = mqtt_host_port(url)
        client.connect_async(host, port, keepalive=30)
        return client

    def _on_connect(self, client: mqtt.Client, _ud: object, flags: mqtt.ConnectFlags, rc: ReasonCode,
                    _props: object) -> None:
        if rc.is_failure:
            log.error("MQTT broker refused the connection: %s", rc)
            return
        self._connection += 1
        # again also when the session is present: a restarted Mosquitto keeps no shared subscription
        group = self.config.settings.ingest.shared_group
        subs = [(f"$share/{group}/{t}" if group else t, 1) for t in SUBSCRIPTIONS]
        if flags.session_present:  # a session from before: its narrower filters would deliver twice
            client.unsubscribe([f"$share/{group}/{t}" if group else t for t in LEGACY_SUBSCRIPTIONS])
        client.subscribe(subs)
        log.info("connected to MQTT (session present: %s), subscribed %s", flags.session_present,
                 [s for s, _ in subs])

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, codes: list, _props: object) -> None:
        if any(getattr(c, "is_failure", False) for c in codes):
            log.error("MQTT subscription refused: %s", codes)
        elif self.on_subscribed is not None:
            self.on_subscribed()

    def _on_message(self, _client: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
        self.inbox.put(_Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, int(time.time() * 1000),
                                self._connection))

    # -- processing ---------------------------------------------------------------------------
    def handle(self, inbound: _Inbound) -> list[Record]:
        """Validate one message -> the Kafka records (topic, key, value) it becomes. Never raises."""
        return self.records([inbound])

    def records(self, messages: list[_Inbound]) -> list[Record]:
        """A micro-batch of messages -> its Kafka records. Never raises.

        The valid readings of one site become one record (in arrival order, up to
        :data:`MERGE_MAX` readings a record), so that a site's single readings cost one Kafka
        record per micro-batch rather than one each."""
        merged: dict[str, list[Batch]] = {}
        out: list[Record] = []
        for inbound in messages:
            valid = self._validate(inbound, out)
            if valid is None:
                continue
            runs = merged.setdefault(valid.site, [valid])
            if runs[-1] is not valid:
                if len(runs[-1]) + len(valid) <= MERGE_MAX:
                    runs[-1].extend(valid)
                else:
                    runs.append(valid)
        readings = [(READINGS, b.site.encode(), b.to_json()) for runs in merged.values() for b in runs]
        return readings + out

    def _validate(self, inbound: _Inbound, out: list[Record]) -> Batch | None:
        """One message: its valid readings; its other records (presence, dead letter) go to ``out``.

        A reading or batch message handled before (:mod:`ingest.dedup`) becomes nothing, and so
        does a broadcast; a message on a topic outside the contract is counted and dead-lettered."""
        if inbound.topic.startswith(BROADCASTS):
            return None
        if not on_contract(inbound.topic):
            OFF_CONTRACT_TOTAL.inc()
            self.off_contract += 1
        if inbound.topic.rsplit("/", 1)[-1] in _DEDUPLICATED and self.recent.seen_before(
                message_key(inbound.topic, inbound.payload)):
            REDELIVERED_TOTAL.inc()
            self.redelivered += 1
            return None
        try:
            valid, rejects = validate_message(self.config, inbound.topic, inbound.payload, inbound.received_ms)
        except Exception as exc:  # noqa: BLE001 - a validator bug must not stop ingest
            log.exception("validator failed on %s", inbound.topic)
            valid, rejects = None, [Reject(f"internal validation error: {exc!r}")]
        batch = None
        if isinstance(valid, Batch):
            batch = valid
            READINGS_TOTAL.inc(len(valid))
            self.produced += len(valid)
        elif isinstance(valid, Status):
            event = {"site": valid.site, "kind": "presence", "status": valid.status,
                     "ts": inbound.received_ms, "source": "mqtt"}
            out.append((HEALTH, valid.site.encode(), orjson.dumps(event)))
        if rejects:  # one bounded dead letter per message, however many of its items were bad
            out.append((DEADLETTER, None, deadletter_record(inbound.topic, inbound.payload, rejects,
                                                            inbound.received_ms)))
            REJECTED_TOTAL.inc(len(rejects))
            self.rejected += len(rejects)
            log.warning("dead-letter %s: %d rejected, first: %s", inbound.topic, len(rejects), rejects[0].reason)
        return batch

    def _produce(self, records: list[Record]) -> None:
        """Wait until Kafka has acknowledged every record once (ingest.delivery); never drop."""

        def send(record: Record) -> FutureRecordMetadata:
            if self._producer is None:
                self._producer = self._connect_kafka()
            topic, key, value = record
            return self._producer.send(topic, key=key, value=value)

        deliver(send, records, stopping=self.stopping.is_set)

    def run(self) -> None:
        """Run until :meth:`stop`. Drains the inbox in micro-batches of up to 500 messages."""
        self._mqtt = self._connect_mqtt()
        self._mqtt.loop_start()
        try:
            while not self.stopping.is_set():
                try:
                    first = self.inbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                pending = [first]
                while len(pending) < 500:
                    try:
                        pending.append(self.inbox.get_nowait())
                    except queue.Empty:
                        break
                before = self.redelivered
                records = self.records(pending)
                if self.redelivered > before and time.monotonic() >= self._quiet_until:
                    self._quiet_until = time.monotonic() + 10  # a restart brings thousands: a line per 10 s
                    log.info("%d message(s) received again since the start, not sent to Kafka again",
                             self.redelivered)
                try:
                    self._produce(records)
                except InterruptedError:
                    break
                for m in pending:  # only now may the broker forget them
                    # on a later connection the mid may name another message (the broker restarted);
                    # a message left unacknowledged comes again if the broker still has it
                    if m.qos > 0 and m.connection == self._connection:
                        self._mqtt.ack(m.mid, m.qos)
        finally:
            self._mqtt.loop_stop()
            self._mqtt.disconnect()
            if self._producer is not None:
                self._producer.close(timeout=5)

    def stop(self) -> None:
        self.stopping.set()
