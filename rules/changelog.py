"""The rules worker's durable state: compacted changelog topics of site id -> JSON value.

Each topic has the readings' partition count, and a site's records go to the partition of its
readings (the producer's murmur2 partitioner on the same key), so the worker that owns a site's
readings partition owns its state. On an assignment the worker reads the owned partitions from
the beginning and keeps the last value of every key, or the one a policy prefers (:meth:`Changelog.restore`); a write is a
record of the key's whole new value (:meth:`Changelog.put`). The topics are the ones the faust
tables of earlier versions wrote (``<app id>-<table>-changelog``, JSON values, raw site-id keys),
so the state of a running deployment carries over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2

__all__ = ["METADATA_MAX_AGE_MS", "Changelog", "partition_of"]

METADATA_MAX_AGE_MS = 5000
"""The rules worker's consumers refresh their metadata this often. aiokafka (0.14) does not
refresh it when the offset lookup of a newly assigned partition without a committed offset fails
with NotLeaderForPartition: it asks the old leader again every 100 ms until the periodic refresh,
by default after 5 minutes. Seen in the broker-loss test after a killed leader came back. Every
5 s bounds that stall; a metadata request is cheap."""


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (kafka-python, aiokafka, faust) gives ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class Changelog:
    """The latest value of every site of the owned partitions of one compacted topic."""

    def __init__(self, topic: str, partitions: int, bootstrap: str, producer: AIOKafkaProducer,
                 default: Callable[[], Any], newer: Callable[[Any, Any], bool] | None = None) -> None:
        self.topic, self.partitions, self.bootstrap = topic, partitions, bootstrap
        self.producer = producer
        self.default = default
        self.newer = newer
        """Whether a record replaces the value read before it (default: always, the last one wins)."""
        self.values: dict[str, Any] = {}
        self.superseded: set[str] = set()
        """Keys whose last record lost to an earlier one in the latest :meth:`restore`."""
        self.owned: set[int] = set()

    def __getitem__(self, site: str) -> Any:
        return self.values.get(site) or self.default()

    async def put(self, site: str, value: Any) -> asyncio.Future:
        """Keep ``value`` and send it; returns the send's future (await it before relying on it)."""
        self.values[site] = value
        return await self.producer.send(self.topic, key=site.encode(), value=orjson.dumps(value),
                                        partition=partition_of(site, self.partitions))

    def drop(self) -> None:
        """Forget everything (the partitions were revoked)."""
        self.values.clear()
        self.superseded.clear()
        self.owned.clear()

    async def restore(self, partitions: Iterable[int], timeout_s: float = 120.0) -> int:
        """Read ``partitions`` from the beginning to their end; returns the records read.

        The end is the larger of the listed end offset and the high watermark of the latest fetch
        response, and every partition is fetched at least once: a listed end offset can be stale
        (seen on Tansu, docs/ARCHITECTURE.md §15), a fetch response's is not."""
        self.owned = set(partitions)
        self.superseded.clear()
        tps = [TopicPartition(self.topic, p) for p in sorted(self.owned)]
        if not tps:
            return 0
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50,
                                    client_id="hazwatch-rules-restore", auto_offset_reset="earliest",
                                    metadata_max_age_ms=METADATA_MAX_AGE_MS)
        await consumer.start()
        read = 0
        deadline = time.monotonic() + timeout_s
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            end = await consumer.end_offsets(tps)
            while True:
                for records in (await consumer.getmany(*tps, timeout_ms=200, max_records=10_000)).values():
                    for rec in records:
                        read += 1
                        site = rec.key.decode()
                        if rec.value is None:
                            self.values.pop(site, None)
                            self.superseded.discard(site)
                            continue
                        value = orjson.loads(rec.value)
                        if self.newer is None or site not in self.values or self.newer(self.values[site], value):
                            self.values[site] = value
                            self.superseded.discard(site)
                        else:
                            self.superseded.add(site)
                behind = [tp for tp in tps if (hw := consumer.highwater(tp)) is None
                          or await consumer.position(tp) < max(hw, end[tp])]
                if not behind:
                    return read
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.topic} {[tp.partition for tp in behind]} not read to the end "
                                       f"within {timeout_s:g} s")
        finally:
            await consumer.stop()
