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
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Counter, Histogram

from config.models import Config
from config.reload import LOADED_AT, applied, reload_config
from config.mqtt import configure_client
from config.topics import DEADLETTER, HEALTH, READINGS
from config.urls import mqtt_host_port
from formats.health import Presence
from formats.health import encode as encode_health
from formats.readings import Readings
from hazwatch.control import ControlListener
from hazwatch.ops import KafkaCheck, serve_from_env
from ingest.deadletter import deadletter_record, reason_kind
from ingest.broker_watch import BrokerWatch
from ingest.dedup import RecentMessages, message_key
from ingest.delivery import Record, deliver
from ingest.inbox import Arrival, Inbox
from ingest.mqtt_client import BatchingClient, Received
from ingest.producer import Pending, Producer
from ingest.validate import Reject, Status, on_contract, validate_message

__all__ = ["IngestService", "SUBSCRIPTIONS"]

log = logging.getLogger("hazwatch.ingest")

SUBSCRIPTIONS = ("hw/v1/#",)
"""Everything under the contract's root, so that a message on a topic outside the contract (an id
with a ``/`` in it, a misspelt kind) is dead-lettered and counted instead of vanishing."""
LEGACY_SUBSCRIPTIONS = ("hw/v1/+/+/reading", "hw/v1/+/batch", "hw/v1/+/status")
"""What ingest subscribed to before: removed from a persistent session that still has them."""
_BROADCASTS = b"hw/v1/broadcast/"
"""hazwatch's own CAP broadcasts and audio (alerts): not input, acknowledged and skipped."""

MESSAGES_TOTAL = Counter("hazwatch_ingest_messages_total", "MQTT messages received")
READINGS_TOTAL = Counter("hazwatch_ingest_readings_total", "Valid readings produced to Kafka")
REJECTED_TOTAL = Counter("hazwatch_ingest_rejected_total", "Rejected readings or messages, by the kind of reason "
                         "(each message with any becomes one dead letter)", ["reason"])
RECORDS_TOTAL = Counter("hazwatch_ingest_kafka_records_total", "Records Kafka acknowledged, by topic", ["topic"])
MICRO_BATCH_MESSAGES = Histogram("hazwatch_ingest_micro_batch_messages", "MQTT messages per micro-batch",
                                 buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000))
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
MICRO_BATCH = 5000
"""Messages taken from the inbox for one round of validation and Kafka produce at most."""
GATHER_S = 0.01
"""A round takes what arrived within 10 ms of its oldest message. Without it, with librdkafka's
quick acknowledgements, rounds came every 6-8 ms at light load: many more small Kafka records and
fetches, and the rules worker spent twice the CPU per reading at 2,000 single readings/s (166
instead of 78 µs). 20 ms saved a little more CPU but tripled the light-load latency (p50 76 ms);
10 ms kept it at 20 ms (docs/BENCHMARKS.md §5)."""
_DEDUPLICATED = ("reading", "batch")  # status messages repeat legitimately (online, offline, online)


def _fixed(old: Config, new: Config) -> str | None:
    """What ingest cannot change while it runs."""
    a, b = old.settings, new.settings
    if (a.mqtt, a.kafka, a.ingest.inbox_max_messages, a.ingest.shared_group) != (
            b.mqtt, b.kafka, b.ingest.inbox_max_messages, b.ingest.shared_group):
        return "the mqtt or kafka settings, ingest.inbox_max_messages or ingest.shared_group changed: restart ingest"
    return None


class IngestService:
    def __init__(self, config: Config, *, client_id: str = "hazwatch-ingest-1",
                 config_dir: Path | None = None) -> None:
        self.config = config
        self.config_dir = config_dir  # read again on SIGHUP (:meth:`request_reload`)
        self.reload_requested = False
        self.control: ControlListener | None = None
        """Follows the control topic (hazwatch/control.py): a reload asked for in the console."""
        LOADED_AT.set(time.time())
        self.started_ms = int(time.time() * 1000)
        self.client_id = client_id
        self.recent = RecentMessages()
        self.redelivered = 0
        self._quiet_until = 0.0
        self._connection = 0
        self.inbox = Inbox(config.settings.ingest.inbox_max_messages)
        self.stopping = threading.Event()
        self.produced = 0
        self.rejected = 0
        self.off_contract = 0
        self._producer: Producer | None = None
        self._mqtt: BatchingClient | None = None
        self.on_subscribed: Callable[[], None] | None = None

    # -- wiring -------------------------------------------------------------------------------
    def _connect_kafka(self) -> Producer:
        return Producer(self.config.settings.kafka.bootstrap, client_id=self.client_id)  # ingest/producer.py

    def _connect_mqtt(self) -> BatchingClient:
        client = BatchingClient(  # batches, and keeps what a dying broker had sent (ingest/mqtt_client.py)
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False, manual_ack=True
        )
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_batch = self._on_batch
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.enable_logger(logging.getLogger("hazwatch.ingest.mqtt"))  # paho's errors (a failed socket, keepalive)
        # paho annotates the delays as int; it computes with floats
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)  # type: ignore[arg-type]
        # production's account: hazwatch-ingest (deploy/mosquitto/acl); TLS for an mqtts:// URL
        host, port = configure_client(client, self.config.settings.mqtt)
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

    def _on_disconnect(self, _c: mqtt.Client, _ud: object, _flags: object, rc: ReasonCode, _props: object) -> None:
        if not self.stopping.is_set():
            log.warning("lost the MQTT connection (%s); reconnecting: the broker keeps the session", rc)

    def _on_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, codes: list, _props: object) -> None:
        if any(getattr(c, "is_failure", False) for c in codes):
            log.error("MQTT subscription refused: %s", codes)
        elif self.on_subscribed is not None:
            self.on_subscribed()

    def _on_batch(self, messages: list[Received]) -> None:  # paho's thread; waits while the inbox is full
        client = self._mqtt
        self.inbox.put(Arrival(self._connection, int(time.time() * 1000), messages), self.stopping.is_set,
                       client.stay_alive if client is not None else lambda: None)

    # -- reloading (SIGHUP) -----------------------------------------------------------------
    def request_reload(self) -> None:
        self.reload_requested = True

    def reload(self) -> None:
        """Validate the configuration directory again and, unless refused (config/reload.py), put
        it in force from the next micro-batch: sites, sensors, ranges and ingest's limits. The
        brokers and the inbox size need a restart."""
        self.reload_requested = False
        report = self.control.reporter() if self.control is not None else None
        new = reload_config(self.config_dir, self.config, service="ingest", fixed=_fixed, report=report)
        if new is not None:
            old, self.config = self.config, new
            applied("ingest", self.config_dir, old, new, report)

    # -- processing ---------------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, received_ms: int | None = None) -> list[Record]:
        """Validate one message -> the Kafka records (topic, key, value) it becomes. Never raises."""
        ms = int(time.time() * 1000) if received_ms is None else received_ms
        return self.records([Arrival(0, ms, [Received(topic.encode(), payload, 0, 1)])])

    def records(self, arrivals: list[Arrival]) -> list[Record]:
        """A micro-batch of messages -> its Kafka records. Never raises.

        The valid readings of one site become one record (in arrival order, up to
        :data:`MERGE_MAX` readings a record), so that a site's single readings cost one Kafka
        record per micro-batch rather than one each."""
        merged: dict[str, list[Readings]] = {}
        out: list[Record] = []
        for arrival in arrivals:
            for message in arrival.messages:
                valid = self._validate(message.topic, message.payload, arrival.received_ms, out)
                if valid is None:
                    continue
                runs = merged.setdefault(valid.site, [valid])
                if runs[-1] is not valid:
                    if len(runs[-1]) + len(valid) <= MERGE_MAX:
                        runs[-1].extend(valid)
                    else:
                        runs.append(valid)
        readings = [(READINGS, b.site.encode(), b.encode()) for runs in merged.values() for b in runs]
        return readings + out

    def _validate(self, raw_topic: bytes, payload: bytes, received_ms: int, out: list[Record]) -> Readings | None:
        """One message: its valid readings; its other records (presence, dead letter) go to ``out``.

        A reading or batch message handled before (:mod:`ingest.dedup`) becomes nothing, and so
        does a broadcast; a message on a topic outside the contract is counted and dead-lettered."""
        if raw_topic.startswith(_BROADCASTS):
            return None
        try:
            topic = raw_topic.decode()
        except UnicodeDecodeError:
            topic = raw_topic.decode("utf-8", "replace")
        if not on_contract(topic):
            OFF_CONTRACT_TOTAL.inc()
            self.off_contract += 1
        if topic.rsplit("/", 1)[-1] in _DEDUPLICATED and self.recent.seen_before(message_key(raw_topic, payload)):
            REDELIVERED_TOTAL.inc()
            self.redelivered += 1
            return None
        try:
            valid, rejects = validate_message(self.config, topic, payload, received_ms)
        except Exception as exc:  # noqa: BLE001 - a validator bug must not stop ingest
            log.exception("validator failed on %s", topic)
            valid, rejects = None, [Reject(f"internal validation error: {exc!r}")]
        batch = None
        if isinstance(valid, Readings):
            batch = valid
            READINGS_TOTAL.inc(len(valid))
            self.produced += len(valid)
        elif isinstance(valid, Status):
            event = Presence(site=valid.site, status=valid.status, ts=received_ms, source="mqtt")
            out.append((HEALTH, valid.site.encode(), encode_health(event)))
        if rejects:  # one bounded dead letter per message, however many of its items were bad
            out.append((DEADLETTER, None, deadletter_record(topic, payload, rejects, received_ms)))
            for reject in rejects:
                REJECTED_TOTAL.labels(reason_kind(reject.reason)).inc()
            self.rejected += len(rejects)
            log.warning("dead-letter %s: %d rejected, first: %s", topic, len(rejects), rejects[0].reason)
        return batch

    def _produce(self, records: list[Record]) -> None:
        """Wait until Kafka has acknowledged every record once (ingest.delivery); never drop."""

        def send(record: Record) -> Pending:
            if self._producer is None:
                self._producer = self._connect_kafka()
            return self._producer.send(*record)

        def reconnect() -> None:  # after a fatal producer error, a new producer (a new idempotence epoch)
            if self._producer is not None and self._producer.broken:
                log.error("the Kafka producer failed fatally; starting a new one")
                self._producer.close(timeout=0)
                self._producer = None

        deliver(send, records, stopping=self.stopping.is_set, reconnect=reconnect)

    def run(self) -> None:
        """Run until :meth:`stop`: take the inbox in micro-batches of up to :data:`MICRO_BATCH`
        messages, send their records to Kafka, then acknowledge them to the broker."""
        self._producer = self._connect_kafka()
        if not self._producer.connect(timeout_s=10):
            log.warning("Kafka at %s does not answer yet; reading MQTT anyway (the broker keeps what waits)",
                        self.config.settings.kafka.bootstrap)
        self._mqtt = self._connect_mqtt()
        self._mqtt.loop_start()
        watch = BrokerWatch(self.config.settings.mqtt, client_id=f"{self.client_id}-watch")  # the broker's drops
        watch.start()
        if self.config_dir is not None:
            self.control = ControlListener(self.config.settings.kafka.bootstrap, "ingest",
                                           lambda _request: self.request_reload(), since_ms=self.started_ms).start()
        kafka = KafkaCheck(self.config.settings.kafka.bootstrap, client_id=f"{self.client_id}-health")
        ops = serve_from_env("ingest", {"mqtt": self._mqtt_health, "kafka": kafka, "inbox": self._inbox_health,
                                        "broker_drops": watch.check}, soft=("inbox", "broker_drops"))
        try:
            while not self.stopping.is_set():
                if self.reload_requested:
                    self.reload()
                arrivals = self.inbox.take(MICRO_BATCH, timeout=0.2, gather_s=GATHER_S)
                if not arrivals:
                    continue
                before = self.redelivered
                records = self.records(arrivals)
                if self.redelivered > before and time.monotonic() >= self._quiet_until:
                    self._quiet_until = time.monotonic() + 10  # a restart brings thousands: a line per 10 s
                    log.info("%d message(s) received again since the start, not sent to Kafka again",
                             self.redelivered)
                try:
                    self._produce(records)
                except InterruptedError:
                    break
                n = sum(len(a.messages) for a in arrivals)
                MESSAGES_TOTAL.inc(n)
                MICRO_BATCH_MESSAGES.observe(n)
                for topic, count in Tally(t for t, _k, _v in records).items():
                    RECORDS_TOTAL.labels(topic).inc(count)
                for arrival in arrivals:  # only now may the broker forget them
                    # on a later connection the mid may name another message (the broker restarted);
                    # a message left unacknowledged comes again if the broker still has it
                    if arrival.connection == self._connection:
                        self._mqtt.ack_many(m.mid for m in arrival.messages if m.qos > 0)
        finally:
            if ops is not None:
                ops.shutdown()
            kafka.close()
            watch.stop()
            if self.control is not None:
                self.control.stop()
            self._mqtt.loop_stop()
            self._mqtt.disconnect()
            if self._producer is not None:
                self._producer.close(timeout=5)

    def _mqtt_health(self) -> str | None:
        if self._mqtt is not None and self._mqtt.is_connected():
            return None
        return f"not connected to the MQTT broker at {':'.join(map(str, mqtt_host_port(self.config.settings.mqtt.url)))}"

    def _inbox_health(self) -> str | None:
        if not self.inbox.full:
            return None
        return f"overloaded: {len(self.inbox):,} messages wait for Kafka, MQTT is left unread (the broker keeps the rest)"

    def stop(self) -> None:
        self.stopping.set()
