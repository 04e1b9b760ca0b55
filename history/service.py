"""The history writer (``hazwatch history``): readings, warnings and health events from Kafka into a
time-series store through influxdb-client's write API (InfluxDB 2 in production, VictoriaMetrics
in the tests and the demo: both take the v2 write API).

Each ``poll`` (up to ``history.batch_records`` Kafka records) becomes one write of all its lines
(history/points.py). Offsets are committed only after the store has acknowledged the write, so a
crash or restart writes some lines again (the same series and time: the store keeps one value)
and loses none. When the store does not answer, the writer keeps the lines, pauses its partitions
(still polling, so that it stays in its consumer group), and tries again after 0.5 s, doubling to
10 s, for as long as the outage lasts. A write the store refuses as invalid (a 4xx other than 429)
can never succeed: its lines go to ``hazwatch.deadletter`` in one bounded record instead.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from kafka import KafkaConsumer, KafkaProducer
from prometheus_client import Counter, Histogram

from config.models import Config
from config.topics import DEADLETTER, HEALTH, READINGS, WARNINGS
from hazwatch.ops import KafkaCheck, serve_from_env
from history.points import Lines

__all__ = ["HistoryWriter"]

log = logging.getLogger("hazwatch.history")

POINTS = Counter("hazwatch_history_points_total", "Lines the store acknowledged")
WRITE_SECONDS = Histogram("hazwatch_history_write_seconds", "Time of one acknowledged write",
                          buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0))
FAILURES = Counter("hazwatch_history_write_failures_total", "Writes that failed and were tried again")
REFUSED = Counter("hazwatch_history_refused_total", "Lines the store refused as invalid (dead-lettered)")
TOPICS = (READINGS, WARNINGS, HEALTH)


class HistoryWriter:
    def __init__(self, config: Config, *, group: str = "hazwatch-history") -> None:
        if config.settings.history.url is None:
            raise ValueError("history.url is not set (hazwatch.yaml, or HAZWATCH_HISTORY_URL)")
        self.config = config
        self.group = group
        self.settings = config.settings.history
        self.lines = Lines(config)
        self.stopping = threading.Event()
        self.on_assigned: object = None
        self.written = 0

    def run(self) -> None:
        s = self.config.settings
        client = InfluxDBClient(url=self.settings.url or "", token=self.settings.token.get_secret_value(),
                                org=self.settings.org, timeout=10_000)
        write_api = client.write_api(write_options=SYNCHRONOUS)
        consumer = KafkaConsumer(*TOPICS, bootstrap_servers=s.kafka.bootstrap, group_id=self.group,
                                 client_id=self.group, enable_auto_commit=False, auto_offset_reset="earliest",
                                 fetch_max_wait_ms=100, max_poll_interval_ms=600_000,
                                 # as the alerts consumer: with kafka-python's 10 s session and 3 s
                                 # heartbeat the demo's first readings reached the store 27 s late
                                 session_timeout_ms=6000, heartbeat_interval_ms=1000)
        producer = KafkaProducer(bootstrap_servers=s.kafka.bootstrap, acks="all", client_id=self.group)
        kafka = KafkaCheck(s.kafka.bootstrap, client_id=f"{self.group}-health")
        ops = serve_from_env("history", {"kafka": kafka, "store": lambda: self._store_check(client)})
        try:
            while not self.stopping.is_set():
                batches = consumer.poll(timeout_ms=500, max_records=self.settings.batch_records)
                if callable(self.on_assigned) and consumer.assignment():
                    self.on_assigned()
                    self.on_assigned = None
                if not batches:
                    continue
                lines = [line for tp, records in batches.items() for r in records
                         for line in self.lines.of(tp.topic, r.value)]
                if lines and not self._write(write_api, producer, consumer, lines):
                    break  # stopping before the store took them: not committed, written after a restart
                consumer.commit()
        finally:
            if ops is not None:
                ops.shutdown()
            kafka.close()
            consumer.close()
            producer.close(5)
            client.close()

    def _write(self, write_api: object, producer: KafkaProducer, consumer: KafkaConsumer, lines: list[str]) -> bool:
        """Write ``lines`` until the store takes them (True) or the writer stops (False)."""
        body = "\n".join(lines).encode()
        delay = 0.5
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                write_api.write(bucket=self.settings.bucket, org=self.settings.org, record=body,  # type: ignore[attr-defined]
                                write_precision=WritePrecision.MS)
            except ApiException as exc:
                if exc.status is not None and 400 <= exc.status < 500 and exc.status != 429:
                    self._refused(producer, lines, exc)
                    return True
                self._wait(consumer, exc, delay)
            except Exception as exc:  # noqa: BLE001 - unreachable, timed out, reset: try again
                self._wait(consumer, exc, delay)
            else:
                WRITE_SECONDS.observe(time.perf_counter() - started)
                POINTS.inc(len(lines))
                self.written += len(lines)
                return True
            delay = min(delay * 2, 10.0)
        return False

    def _wait(self, consumer: KafkaConsumer, exc: BaseException, delay: float) -> None:
        """Polls with every partition paused for ``delay`` s: the group keeps this member."""
        FAILURES.inc()
        log.warning("history store did not take the write (%s); again in %.1f s", exc, delay)
        assigned = list(consumer.assignment())
        consumer.pause(*assigned)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self.stopping.is_set():
            consumer.poll(timeout_ms=200)
        consumer.resume(*assigned)

    def _refused(self, producer: KafkaProducer, lines: list[str], exc: ApiException) -> None:
        REFUSED.inc(len(lines))
        log.error("history store refused %d line(s) (%s %s); dead-lettered", len(lines), exc.status, exc.body)
        producer.send(DEADLETTER, value=orjson.dumps({
            "source": "history", "reason": f"the history store refused the write: {exc.status} {exc.body}"[:1000],
            "lines": len(lines), "first": lines[:5]})).get(timeout=60)

    @staticmethod
    def _store_check(client: InfluxDBClient) -> str | None:
        try:
            return None if client.ping() else f"the history store at {client.url} does not answer its ping"
        except Exception as exc:  # noqa: BLE001 - whatever it is, the store did not answer
            return f"the history store did not answer: {type(exc).__name__}"

    def stop(self) -> None:
        self.stopping.set()
