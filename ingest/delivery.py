"""Delivery of ingest's Kafka records: each acknowledged once, through any outage, in order.

A micro-batch's records are sent once. A record is sent again only when its own send failed: it
was never queued (the producer had no metadata or no buffer room in time), or the producer gave
up on it with a retriable error. A record still in flight is waited for, however long the outage
lasts; sending it again would store it twice, since the producer retries it by itself (with an
idempotent producer the broker then drops the producer's own retries, never a second send).

A record that no broker will ever accept (larger than the producer's or the topic's limit, or
otherwise invalid) is replaced by a small dead letter that says so, instead of blocking ingest.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

import orjson

from config.topics import DEADLETTER
from ingest.producer import Pending, permanent

__all__ = ["Record", "deliver", "refused_record"]

log = logging.getLogger("hazwatch.ingest")

Record = tuple[str, bytes | None, bytes]
"""(topic, key, value)."""

_PREFIX = 256
_WAIT_S = 1.0


def refused_record(record: Record, exc: BaseException) -> Record:
    """A bounded dead letter for a record that Kafka refused: its size, digest and a prefix."""
    topic, key, value = record
    return (DEADLETTER, None, orjson.dumps({
        "source": "ingest", "reason": f"Kafka refused a record for {topic}: {type(exc).__name__}: {exc}",
        "topic": topic, "key": key.decode("utf-8", "replace") if key else None, "bytes": len(value),
        "sha256": hashlib.sha256(value).hexdigest(), "prefix": value[:_PREFIX].decode("utf-8", "replace"),
    }))


def deliver(send: Callable[[Record], Pending], records: list[Record], *,
            stopping: Callable[[], bool], reconnect: Callable[[], None] = lambda: None) -> None:
    """Send ``records`` and return once Kafka has acknowledged each of them exactly once.

    ``send`` queues one record on the producer and returns its future. ``reconnect`` is called
    before a retry round (a new producer after a fatal producer error). Raises InterruptedError
    when ``stopping()`` turns true first: then the caller must not acknowledge the input.
    """
    todo = list(records)
    delay = 0.5
    while todo:
        in_flight: list[tuple[Record, Pending]] = []
        retry: list[Record] = []
        for i, record in enumerate(todo):
            try:
                in_flight.append((record, send(record)))
            except Exception as exc:  # noqa: BLE001 - refused, or no metadata/buffer room in time
                if permanent(exc):
                    todo.insert(i + 1, refused_record(record, exc))
                    log.error("Kafka refuses a record for %s (%d bytes): %s; dead-lettered", record[0],
                              len(record[2]), exc)
                    continue
                log.warning("Kafka unavailable (%s): %d record(s) wait", exc, len(todo) - i)
                retry = todo[i:]
                break
        failed: list[Record] = []
        for record, future in in_flight:
            while not future.is_done:
                if stopping():
                    raise InterruptedError("stopping before Kafka acknowledged")
                future.get(timeout=_WAIT_S)
            if future.failed():
                if permanent(future.exception):
                    failed.append(refused_record(record, future.exception))
                else:
                    failed.append(record)
        todo = failed + retry
        if todo:
            if stopping():
                raise InterruptedError("stopping before Kafka acknowledged")
            log.warning("Kafka did not take %d record(s); again in %.1f s", len(todo), delay)
            time.sleep(delay)
            delay = min(delay * 2, 10.0)
            reconnect()
