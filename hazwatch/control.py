"""The control topic: a reload asked for once (by an admin in the console) reaches every service.

``hazwatch.control`` (one partition) carries two kinds of record, JSON:

- a request, ``{"type": "reload", "id", "by", "at", "changes"}``, produced by
  :func:`request_reload` (the console's ``POST /api/config/reload``);
- an outcome, ``{"type": "reloaded", "request", "service", "instance", "result", "detail", "at"}``,
  produced by each service once it applied (``result: "applied"``) or refused (``"refused"``) the
  configuration, whatever asked for it (a request, or SIGHUP: ``request`` null).

Every process follows the topic without a consumer group (each must see every request, as with a
broadcast), from the time it loaded its configuration: a request made after that is seen even
when the process was still starting. Whatever goes wrong (Kafka not up yet, a poll raises) is
logged and the reader starts again after a back-off (1 s, doubling up to 30 s) from the offsets
it had reached: a request is neither missed nor applied twice while the process runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from config.topics import CONTROL
from hazwatch.background import Background

__all__ = ["ControlListener", "new_request", "request_reload"]

log = logging.getLogger("hazwatch.control")


TIMEOUT_MS = 10_000
"""How long a record may take to reach Kafka (connecting, metadata, the send itself)."""


def _produce(bootstrap: str, value: dict[str, Any], client_id: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id=client_id,
                             bootstrap_timeout_ms=TIMEOUT_MS, max_block_ms=TIMEOUT_MS,
                             request_timeout_ms=TIMEOUT_MS, delivery_timeout_ms=2 * TIMEOUT_MS, linger_ms=0)
    try:
        producer.send(CONTROL, orjson.dumps(value)).get(timeout=TIMEOUT_MS / 1000)
    finally:
        producer.close(0)  # nothing is sent after a failure that was reported


def new_request() -> str:
    """The id of a reload request about to be made."""
    return str(uuid.uuid4())


def request_reload(bootstrap: str, request: str, *, by: str, changes: list[str]) -> None:
    """Ask every service to read its configuration directory again (``request``: its id, from
    :func:`new_request`). Raises (``kafka.errors.KafkaError``) when Kafka did not acknowledge it
    within :data:`TIMEOUT_MS`: it may still have reached some services."""
    _produce(bootstrap, {"type": "reload", "id": request, "by": by, "at": int(time.time() * 1000),
                         "changes": changes}, "hazwatch-control")


class ControlListener(Background):
    """Follows :data:`CONTROL` in a daemon thread and calls ``on_reload(request)`` for each reload
    request made after ``since_ms``; :meth:`report` publishes an outcome. ``on_outcome``, when given,
    gets every outcome record too (the console shows them)."""

    def __init__(self, bootstrap: str, service: str, on_reload: Callable[[dict[str, Any]], None], *,
                 since_ms: int | None = None, on_outcome: Callable[[dict[str, Any]], None] | None = None,
                 backoff_s: tuple[float, float] = (1.0, 30.0)) -> None:
        self.bootstrap, self.service = bootstrap, service
        self.instance = f"{socket.gethostname()}:{os.getpid()}"
        self.on_reload, self.on_outcome = on_reload, on_outcome
        self.since_ms = int(time.time() * 1000) if since_ms is None else since_ms
        self.backoff_s = backoff_s
        self.positions: dict[int, int] = {}
        super().__init__()
        self.thread_name = f"control-{service}"
        self.pending: list[dict[str, Any]] = []
        """Reload requests not yet answered (the next reload answers them all)."""
        self._lock = threading.Lock()
        self.following = threading.Event()
        """Set once the reader is positioned (tests wait for it before asking)."""

    def take_pending(self) -> list[dict[str, Any]]:
        """The requests the reload about to happen answers (none: SIGHUP)."""
        with self._lock:
            requests, self.pending = self.pending, []
        return requests

    def reporter(self, requests: list[dict[str, Any]] | None = None) -> Callable[[str, str], None]:
        """The report of the reload about to happen (config/reload.py ``Report``): it answers
        ``requests`` (default: those pending), or, for a reload by SIGHUP, none. Published from a
        thread of its own, so that a slow Kafka never holds up the service's loop."""
        answered = self.take_pending() if requests is None else requests

        def report(result: str, detail: str) -> None:
            for request in answered or [None]:
                threading.Thread(target=self.report, args=(request, result, detail), daemon=True,
                                 name=f"control-report-{self.service}").start()
        return report

    def report(self, request: dict[str, Any] | None, result: str, detail: str) -> None:
        """Publish the outcome of a reload (never raises: the log has it too)."""
        try:
            _produce(self.bootstrap, {"type": "reloaded", "request": request and request.get("id"),
                                      "service": self.service, "instance": self.instance, "result": result,
                                      "detail": detail, "at": int(time.time() * 1000)},
                     f"hazwatch-control-{self.service}")
        except Exception:  # noqa: BLE001 - an outcome not published is logged; the reload stands
            log.exception("%s: the reload's outcome could not be published on %s", self.service, CONTROL)

    def _run(self) -> None:
        wait = self.backoff_s[0]
        while not self.stopping.is_set():
            consumer = None
            try:
                consumer = self._consumer()
                if consumer is not None:
                    wait = self.backoff_s[0]
                    self._follow(consumer)
            except Exception:  # noqa: BLE001 - the reader never dies while the process runs
                log.exception("%s: reading %s failed; again in %.0f s", self.service, CONTROL, wait)
            finally:
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        consumer.close()
            if not self.stopping.is_set():
                self.stopping.wait(wait)
                wait = min(wait * 2, self.backoff_s[1])

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                 client_id=f"hazwatch-control-{self.service}", fetch_max_wait_ms=500)
        partitions = consumer.partitions_for_topic(CONTROL)
        if not partitions:
            consumer.close()
            return None  # not created yet: again after the back-off
        tps = [TopicPartition(CONTROL, p) for p in sorted(partitions)]
        consumer.assign(tps)
        since = consumer.offsets_for_times({tp: self.since_ms for tp in tps if tp.partition not in self.positions})
        ends = consumer.end_offsets(tps)
        for tp in tps:
            found = since.get(tp)
            consumer.seek(tp, self.positions.get(tp.partition, found.offset if found is not None else ends[tp]))
        self.following.set()
        return consumer

    def _follow(self, consumer: Any) -> None:
        while not self.stopping.is_set():
            for tp, records in consumer.poll(timeout_ms=1000).items():
                for rec in records:
                    self.positions[tp.partition] = rec.offset + 1
                    self._handle(rec.value)

    def _handle(self, raw: bytes) -> None:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.error("%s: a record on %s that is not JSON, ignored: %r", self.service, CONTROL, raw[:200])
            return
        if not isinstance(record, dict):
            return
        if record.get("type") == "reload":
            log.warning("%s: reload asked for by %s (request %s)", self.service, record.get("by"), record.get("id"))
            with self._lock:
                self.pending.append(record)
            self.on_reload(record)
        elif record.get("type") == "reloaded" and self.on_outcome is not None:
            self.on_outcome(record)
