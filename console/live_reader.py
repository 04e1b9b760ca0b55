"""The Kafka shell around :class:`console.live.LiveState`: a daemon thread, no consumer group.

It assigns every partition of readings, warnings and health, seeks each to *now - history* by
timestamp (``offsets_for_times``), then follows, decoding each record and handing it to the state.
A record that does not decode is counted and skipped (the console is a reader; the dead-letter
topic is the writers' business).

Whatever else goes wrong (the broker is not up yet, a poll raises) is logged, the consumer is
closed and a new one is built after a back-off (1 s, doubling up to 30 s): the reader never dies
while the console runs. The new consumer goes on from the offsets the old one had reached, so
nothing is read twice or skipped; partitions it had not read yet start at *now - history*.
``alive`` (and ``"live"`` in ``/api/health``) says whether the reader is following.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from config.topics import HEALTH, READINGS, WARNINGS
from console.live import LiveState
from formats.health import decode as decode_health
from formats.readings import decode as decode_readings
from formats.warning import WarningEvent
from hazwatch.background import Background

__all__ = ["STALE_S", "LiveReader"]

log = logging.getLogger("hazwatch.console.live")

STALE_S = 30.0
"""The reader counts as alive while its last poll returned less than this long ago (s)."""


class LiveReader(Background):
    """Feeds a :class:`LiveState` from Kafka in a thread. ``consumer_factory`` builds an
    unassigned consumer (default: a ``kafka.KafkaConsumer`` on ``bootstrap``; tests inject
    their own); ``backoff_s``: the first and the longest wait before a new consumer (s)."""

    TOPICS = (READINGS, WARNINGS, HEALTH)
    thread_name = "console-live-reader"

    def __init__(self, bootstrap: str, state: LiveState, *,
                 consumer_factory: Callable[[], Any] | None = None,
                 backoff_s: tuple[float, float] = (1.0, 30.0)) -> None:
        self.bootstrap = bootstrap
        self.state = state
        self.consumer_factory = consumer_factory or self._kafka_consumer
        self.backoff_s = backoff_s
        super().__init__()
        self.assigned = threading.Event()
        """Set once every partition is assigned and positioned (the reader is following)."""
        self.positions: dict[tuple[str, int], int] = {}
        """(topic, partition) -> the next offset to read, for a rebuilt consumer."""
        self.last_poll: float | None = None
        """``time.monotonic()`` when a poll last returned; None before the first."""
        self.restarts = 0

    @property
    def alive(self) -> bool:
        """True while the thread runs and its last poll returned within :data:`STALE_S`."""
        last = self.last_poll
        return self.running and last is not None and time.monotonic() - last <= STALE_S

    def _kafka_consumer(self) -> Any:
        from kafka import KafkaConsumer

        return KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             client_id="hazwatch-console")

    def _position(self, consumer: Any) -> None:
        """Assign every partition; go on from the last positions, else from now - history."""
        from kafka import TopicPartition

        # every partition the broker has: the counts are configuration (kafka.partitions)
        tps = [TopicPartition(t, p) for t in self.TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())]
        if {tp.topic for tp in tps} != set(self.TOPICS):
            raise ConnectionError(f"the broker does not know all of {', '.join(self.TOPICS)} yet")
        consumer.assign(tps)
        fresh = []
        for tp in tps:
            at = self.positions.get((tp.topic, tp.partition))
            if at is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, at)
        if not fresh:
            return
        start = self.state.clock() - self.state.history_ms
        try:
            found = consumer.offsets_for_times({tp: start for tp in fresh})
            for tp in fresh:
                at = found.get(tp)
                if at is None:
                    consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, at.offset)
        except Exception as exc:  # noqa: BLE001 - a broker without timestamp lookup: read all
            log.warning("offsets_for_times failed (%s); reading from the beginning", exc)
            consumer.seek_to_beginning(*fresh)

    def _run(self) -> None:
        delay = self.backoff_s[0]
        while not self.stopping.is_set():
            consumer, polled = None, self.last_poll
            try:
                consumer = self.consumer_factory()
                self._position(consumer)
                self.assigned.set()
                self._follow(consumer)
            except Exception as exc:  # noqa: BLE001 - the reader must outlive any failure
                if self.last_poll != polled:
                    delay = self.backoff_s[0]  # this consumer was following: start over at 1 s
                log.warning("live reader on %s failed (%s: %s); a new consumer in %.0f s",
                            self.bootstrap, type(exc).__name__, exc, delay)
            finally:
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        consumer.close()
            if self.stopping.wait(delay):
                break
            self.restarts += 1
            delay = min(delay * 2, self.backoff_s[1])

    def _follow(self, consumer: Any) -> None:
        start = self.state.clock() - self.state.history_ms
        while not self.stopping.is_set():
            batches = consumer.poll(timeout_ms=200)
            self.last_poll = time.monotonic()
            for records in batches.values():
                for rec in records:
                    self.positions[(rec.topic, rec.partition)] = rec.offset + 1
                    if rec.timestamp is not None and 0 < rec.timestamp < start:
                        continue  # before the window (after a fall-back to the beginning)
                    self.handle(rec.topic, rec.value)

    def handle(self, topic: str, value: bytes) -> None:
        """Decode one record and give it to the state; count and skip what does not decode."""
        try:
            if topic == READINGS:
                self.state.ingest_readings(decode_readings(value))
            elif topic == WARNINGS:
                self.state.ingest_warning(WarningEvent.from_json(value))
            elif topic == HEALTH:
                self.state.ingest_health(decode_health(value))
            self.state.records += 1
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the reader
            self.state.errors += 1
            log.warning("skipped an undecodable %s record: %r", topic, exc)
