"""How the rules worker hands its state over: snapshots, commits, and the rebalance listener.

A *snapshot* writes the state of every site changed since it began to the changelog
(:mod:`rules.changelog`), each with the partition and offset of the last readings message it
reflects, waits for those writes, and only then commits the offsets consumed when it began. It is
written in slices of ``slice_sites`` sites, one slice at the end of each turn of the loop, so that
no turn holds the readings back for the whole export (about 0.2 s for 1,000 changed sites). A
site that changes again after its slice was written is simply dirty for the next snapshot; one
whose slice comes later is written with its newer state and the offset that state reflects, which
is still at or beyond what the snapshot commits. A hand-over or a clean stop writes the rest at once.

aiokafka (0.14) calls the rebalance listener from its coordinator task, at any point where the
worker's loop awaits: while a batch's events wait for Kafka's acknowledgement, say. A hand-over
there would write the arrays of a half-done batch and then forget what the rest of the batch
changes. So the loop holds :attr:`Handover.turn` for each whole turn (evaluate, emit, snapshot),
and both callbacks take it too: a hand-over happens between turns, never inside one.

A turn can outlast the group's rebalance timeout (a Kafka node that hangs holds a batch's
acknowledgements up to the producer's request timeout). The group then goes on without this
worker, and its hand-over comes late, when another worker may already own the partitions. Two
things keep such a late writer harmless:

- when the coordinator has already dropped this member (its generation was reset), the partitions
  were *lost*, not revoked: nothing is written or committed, the state is only forgotten;
- when it does not know yet, its writes may land after the new owner's. A restore therefore keeps,
  per site, the record with the highest readings offset (:func:`newer`), not the last one written,
  and writes that record again, so that compaction cannot keep the stale one. The late writer's
  state is the same evaluation of the same readings (the engine is deterministic), only older.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.protocol.group import JoinGroupRequest

from config.topics import MAINTENANCE, READINGS
from rules import metrics
from rules.changelog import Changelog

__all__ = ["Handover", "newer"]

log = logging.getLogger("hazwatch.rules")


def newer(kept: dict[str, Any], read: dict[str, Any]) -> bool:
    """Whether the site state ``read`` from the changelog replaces ``kept``, read before it: unless
    it reflects an earlier readings message of the same partition (a late writer's)."""
    old, new = kept.get("offset"), read.get("offset")
    return not (old and new and old[0] == new[0] and new[1] < old[1])


@dataclass
class Snapshot:
    """A snapshot being written: the sites still to write, the writes sent, what it will commit."""

    sites: list[str]
    covers: dict[TopicPartition, int]
    batches: int  # the replay batches (``pending``) it makes unnecessary once done
    writes: list[asyncio.Future] = field(default_factory=list)
    export_s: float = 0.0


class Handover(ConsumerRebalanceListener):
    """The snapshot, commit and rebalance half of :class:`rules.worker.RulesWorker`."""

    snapshot_s_target: float
    snapshot_share: float
    snapshot_max_messages: int
    commit_interval_s: float
    slice_sites: int
    consumer: AIOKafkaConsumer | None
    state: Changelog | None
    windows: Changelog | None
    on_ready: Callable[[], None] | None

    def _init_handover(self) -> None:
        self.turn = asyncio.Lock()  # held by each turn of the loop and by both rebalance callbacks
        self.loaded: set[str] = set()  # sites whose state is in the engine's arrays
        self.offsets: dict[str, list[int]] = {}  # site -> [partition, offset] of its last message in the state
        self.dirty: set[str] = set()  # sites whose arrays are ahead of the changelog
        self.pending: list[tuple[list, int]] = []  # readings since the last snapshot, and their clock
        self.consumed: dict[TopicPartition, int] = {}  # next offset to commit, once a snapshot covers it
        self.covered: dict[TopicPartition, int] = {}  # next offsets a snapshot covers, not committed yet
        self.last_commit = self.last_snapshot = time.monotonic()
        self.snapshot_s = 0.0  # how long the last snapshot's exports took
        self.writing: Snapshot | None = None
        self.ready = False
        self.failed: BaseException | None = None  # the state could not be restored

    # provided by the worker
    def export_site(self, site: str) -> dict[str, Any]:
        raise NotImplementedError

    def load(self, sites: set[str]) -> None:
        raise NotImplementedError

    # -- snapshots ---------------------------------------------------------------------------
    def begin_snapshot(self) -> None:
        """Start a snapshot of the sites dirty now, to commit the offsets consumed now."""
        assert self.writing is None
        self.writing = Snapshot(sorted(self.dirty), dict(self.consumed), len(self.pending))
        self.dirty.clear()
        self.consumed.clear()
        self.last_snapshot = time.monotonic()

    async def snapshot_slice(self, n: int | None = None) -> None:
        """Send the next ``n`` sites of the snapshot being written (all: None); once every write is
        sent and acknowledged, the snapshot is done and its offsets are covered."""
        assert self.state is not None and self.writing is not None
        w = self.writing
        started = time.perf_counter()
        take, w.sites = (w.sites, []) if n is None else (w.sites[:n], w.sites[n:])
        for site in take:
            state = self.export_site(site)
            if site in self.offsets:
                state["offset"] = self.offsets[site]
            w.writes.append(await self.state.put(site, state))
        w.export_s += time.perf_counter() - started
        if w.sites:
            return
        await asyncio.gather(*w.writes)
        self.covered.update(w.covers)
        del self.pending[:w.batches]
        self.snapshot_s = w.export_s
        metrics.SNAPSHOT_SECONDS.observe(w.export_s)
        self.writing = None

    async def snapshot(self, *, commit: bool = False) -> None:
        """Take a snapshot step at the end of a turn: begin one when due, write a slice of the one
        being written, commit what a finished one covers (at most every ``commit_interval_s``).
        ``commit``: write everything now, wait for it and commit (a hand-over, a clean stop)."""
        assert self.consumer is not None
        if commit and self.writing is not None:  # the rest of this one, and what changed since, at once
            self.writing.sites = sorted(set(self.writing.sites) | self.dirty)
            self.writing.covers.update(self.consumed)
            self.writing.batches = len(self.pending)
            self.dirty.clear()
            self.consumed.clear()
        elif commit and (self.dirty or self.consumed) or self.snapshot_due():
            self.begin_snapshot()
        if self.writing is not None:
            await self.snapshot_slice(None if commit else self.slice_sites)
        if self.covered and (commit or time.monotonic() - self.last_commit >= self.commit_interval_s):
            try:
                await self.consumer.commit(dict(self.covered))
            except (CommitFailedError, IllegalStateError) as exc:  # the group rebalanced meanwhile
                log.warning("offsets not committed (%s); whoever owns the partitions next consumes those "
                            "readings again, and the snapshot's per-site offsets skip what it covers", exc)
            self.covered.clear()
            self.last_commit = time.monotonic()

    def snapshot_due(self) -> bool:
        """Whether a snapshot should begin now (a snapshot being written goes on in any case)."""
        if self.writing is not None or not (self.dirty or self.consumed):
            return False
        return (time.monotonic() - self.last_snapshot >= max(self.snapshot_s_target, self.snapshot_s / self.snapshot_share)
                or sum(len(records) for records, _ in self.pending) >= self.snapshot_max_messages)

    def snapshot_work(self) -> bool:
        """Whether the end of this turn has snapshot work: a slice, a snapshot to begin, a commit."""
        return (self.writing is not None or self.snapshot_due()
                or bool(self.covered) and time.monotonic() - self.last_commit >= self.commit_interval_s)

    # -- rebalance (called from aiokafka's coordinator task) -----------------------------------
    def lost(self) -> bool:
        """Whether the group coordinator has dropped this member (aiokafka resets its generation):
        its partitions may already be someone else's. aiokafka has no ``on_partitions_lost``."""
        assert self.consumer is not None
        return self.consumer._coordinator.member_id == JoinGroupRequest.UNKNOWN_MEMBER_ID  # noqa: SLF001

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with self.turn:
            lost = self.lost()
            if revoked:  # nothing on the first join
                log.info("partitions %s: %s", "lost" if lost else "revoked",
                         sorted((tp.topic, tp.partition) for tp in revoked))
            try:
                if self.ready and not lost:
                    await self.snapshot(commit=True)  # hand over what this worker has done
            finally:  # a failed hand-over is replayed by the next owner: forget everything either way
                self._forget()

    def _forget(self) -> None:
        self.ready = False
        for kept in (self.loaded, self.offsets, self.dirty, self.consumed, self.covered):
            kept.clear()
        self.pending.clear()
        self.writing = None
        assert self.state is not None and self.windows is not None
        self.state.drop()
        self.windows.drop()

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        assert self.state is not None and self.windows is not None and self.consumer is not None
        async with self.turn:
            # aiokafka's fetcher starts on the new assignment before this runs: nothing is handed
            # out until the state is back (and what slipped through is fetched again: run())
            self.consumer.pause(*assigned)
            mine = {tp.partition for tp in assigned if tp.topic == READINGS}
            try:
                n = await self.state.restore(mine) + await self.windows.restore(
                    {tp.partition for tp in assigned if tp.topic == MAINTENANCE})
            except Exception as exc:  # aiokafka would only log it: run() ends the worker, a restart retries
                self.failed = exc
                raise
            if self.state.superseded:  # a late writer's record came last: write the newer one again
                self.load(self.state.superseded)
                self.dirty.update(self.state.superseded)
            self.consumer.resume(*assigned)
            log.info("partitions %s assigned; %d changelog records restored", sorted(mine), n)
            self.ready = True
        if self.on_ready is not None:
            self.on_ready()
