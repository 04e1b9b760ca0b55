"""The rules worker: a thin Kafka shell (aiokafka) around :class:`rules.engine.Engine`.

One asyncio loop, one consumer of the group ``hazwatch-rules`` on ``hazwatch.readings`` and
``hazwatch.maintenance`` (the same key and partition count, so the range assignor gives a worker
partition *i* of both). Per ``getmany`` micro-batch: keep the runtime maintenance records, decode
the readings messages, load the state of their sites, evaluate, send the warning and health events
and wait for Kafka's acknowledgement. The new state stays in the engine's arrays; a *snapshot*
(:mod:`rules.handover`) writes what changed to the changelog and then commits the offsets it
covers. A snapshot is taken every ``SNAPSHOT_S`` (longer when snapshots are slow:
``SNAPSHOT_SHARE``), after ``SNAPSHOT_MAX_MESSAGES`` messages, before partitions are handed over in
a rebalance (between two turns of the loop, never inside one), and at a clean stop.

Why this order survives a crash (SIGKILL) at any point:

- killed before a snapshot's commit: the committed offsets are where the last complete snapshot
  left them; the readings since are consumed again and give the same events (episode ids are
  deterministic); the alerts outbox recognises their idempotency keys, so nobody is notified twice;
- a site whose state was written by a snapshot whose commit did not happen records the partition
  and offset of its last readings message, so the messages Kafka delivers again are recognised and
  skipped for it -- no event twice, and no already-evaluated reading dead-lettered as "late".

A batch that raises is dead-lettered; the arrays may hold part of it, so the sites are reloaded
from the changelog and the batches since the last snapshot are evaluated again, silently (their
events are out already), before the worker goes on.

Why not faust (it ran this shell until 2026-12): on single-reading messages its per-message
machinery (fetcher, conductor, channel, stream, acknowledgements) took about 70 % of the worker's
samples, some 140 µs of CPU a message, where the evaluation needs a few (docs/ARCHITECTURE.md §8.1 and
docs/BENCHMARKS.md §4). aiokafka is faust's own Kafka client; this shell keeps what faust gave
(group membership, changelog-backed state, restore on assignment) and hands the engine whole
fetches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import ConsumerRecord

from config.models import Config
from config.reload import LOADED_AT
from config.topics import DEADLETTER, HEALTH, MAINTENANCE, READINGS, RULES_CHANGELOGS, WARNINGS
from formats.health import SensorHealth
from formats.health import encode as encode_health
from formats.maintenance import decode as decode_window
from hazwatch.control import ControlListener
from hazwatch.logs import configure_logging
from hazwatch.ops import KafkaCheck, serve_from_env
from rules import metrics
from rules.batch import decode
from rules.changelog import METADATA_MAX_AGE_MS, Changelog, partition_of
from rules.engine import Engine, Output
from rules.handover import Handover, newer
from rules.maintenance import upsert_window
from rules.reload import Reload

__all__ = ["RulesWorker", "decode", "run_worker"]

log = logging.getLogger("hazwatch.rules")

TAKE_MAX = 5000
TAKE_WITHIN_MS = int(os.environ.get("HAZWATCH_RULES_TAKE_WITHIN_MS", "20"))
TICK_S = 1.0
FETCH_MAX_WAIT_MS = 100
"""How long the broker may hold a fetch that has nothing: Apache Kafka answers as soon as a record
arrives, Tansu 0.6 only when the wait runs out (its latency floor, with the default 500 ms). A
``fetch_min_bytes`` of 64 KiB with a 20 ms wait cut the worker's CPU at 2,000 single readings/s
by a third but tripled the light-load latency (p50 21 -> 74 ms): not taken."""
SNAPSHOT_S = float(os.environ.get("HAZWATCH_RULES_SNAPSHOT_S", "1.0"))
SNAPSHOT_SHARE = 0.1
"""The share of the worker's time that snapshots may take: after a snapshot that took longer than
``SNAPSHOT_SHARE * SNAPSHOT_S`` (every one of 1,000 sites changed: about 0.2 s), the next one waits
``duration / SNAPSHOT_SHARE``. A crash then replays more readings; it loses and repeats nothing."""
SNAPSHOT_SLICE = int(os.environ.get("HAZWATCH_RULES_SNAPSHOT_SLICE", "100"))
"""Sites written per turn of the loop while a snapshot is written (rules.handover)."""
SNAPSHOT_MAX_MESSAGES = 100_000
"""A snapshot after this many readings messages however soon: what a crash replays stays bounded."""
COMMIT_INTERVAL_S = float(os.environ.get("HAZWATCH_RULES_COMMIT_INTERVAL_S", "0"))
"""Commit the offsets a snapshot covers at most this often (0: with every snapshot). The tests
raise it to crash between a snapshot and its commit."""


def _dead(payload: dict) -> bytes:
    return orjson.dumps({"source": "rules", **payload})


class RulesWorker(Handover, Reload):
    """The shell's state and steps; :meth:`run` is the loop. Also the consumer's rebalance listener."""

    snapshot_s_target = SNAPSHOT_S
    snapshot_share = SNAPSHOT_SHARE
    snapshot_max_messages = SNAPSHOT_MAX_MESSAGES
    commit_interval_s = COMMIT_INTERVAL_S
    slice_sites = SNAPSHOT_SLICE

    def __init__(self, config: Config, *, group: str = "hazwatch-rules",
                 on_ready: Callable[[], None] | None = None, config_dir: Path | None = None) -> None:
        self.group = group
        self.on_ready = on_ready
        self.config_dir = config_dir  # read again on SIGHUP (rules.reload)
        self.n_partitions = config.settings.kafka.partitions[READINGS]
        self._configured(config)
        LOADED_AT.set(time.time())
        self.started_ms = int(time.time() * 1000)  # sensors never seen count their silence from now
        self.engine = Engine(config, started_ms=self.started_ms)
        self.engine.warm_up()  # compiled before the first batch, not during it
        self._init_handover()
        self.last_tick = time.monotonic()
        self.stopping = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.state: Changelog | None = None
        self.windows: Changelog | None = None
        self._owned: tuple[frozenset[int], list[str]] = (frozenset(), [])

    def _configured(self, config: Config) -> None:
        """Put ``config`` in force (at start, and by a reload with its new engine)."""
        self.config = config
        self.sites_known = {s.id for s in config.sites}
        self.retain_ms = int(config.settings.ingest.max_age_s * 1000) + 86_400_000  # windows older cannot matter
        self._owned = (frozenset(), [])

    def owned_sites(self) -> list[str]:
        assert self.state is not None
        owned = frozenset(self.state.owned)
        if owned != self._owned[0]:
            self._owned = (owned, [s.id for s in self.config.sites if partition_of(s.id, self.n_partitions) in owned])
        return self._owned[1]

    # -- state -----------------------------------------------------------------------------
    def export_site(self, site: str) -> dict:
        return self.engine.export_site(site)

    def load(self, sites: Iterable[str]) -> None:
        """The runtime windows of ``sites``, and their state from the changelog if not loaded yet."""
        assert self.state is not None and self.windows is not None
        for site in sites:
            self.engine.set_site_windows(site, self.windows[site])  # no-op when unchanged
            if site not in self.loaded:
                saved = self.state[site]
                self.engine.import_site(site, saved)
                self.offsets.pop(site, None)
                if saved.get("offset") is not None:
                    self.offsets[site] = saved["offset"]
                self.loaded.add(site)

    # -- events ----------------------------------------------------------------------------
    async def _send(self, topic: str, key: bytes | None, value: bytes) -> asyncio.Future:
        assert self.producer is not None
        return await self.producer.send(topic, key=key, value=value)

    async def _emit(self, out: Output) -> None:
        pending = []
        for event in out.warnings:
            pending.append(await self._send(WARNINGS, event.site.encode(), event.to_json()))
            log.info("%s %s %s -> %s (%s %s)", event.subject, event.kind, event.previous, event.level,
                     event.value, event.unit)
        for h in out.health:
            pending.append(await self._send(HEALTH, h["site"].encode(), encode_health(SensorHealth(**h))))
        await asyncio.gather(*pending)  # the events are in Kafka before the state says they happened
        metrics.emitted(out)

    async def tick(self) -> None:
        """Offline detection by the wall clock: a silent sensor is noticed without a new message."""
        self.last_tick = time.monotonic()
        sites = self.owned_sites()
        self.load(sites)
        out = self.engine.tick(int(time.time() * 1000), sites)
        if out.health or out.warnings or out.released:
            await self._emit(out)
            self.dirty.update({h["site"] for h in out.health} | {w.site for w in out.warnings} | set(out.released))

    async def maintenance(self, records: list[ConsumerRecord]) -> None:
        """Keep each site's runtime windows; a bad record is dead-lettered, never fatal."""
        assert self.windows is not None
        writes = []
        for rec in records:
            try:
                window = decode_window(rec.value)
                kept = upsert_window(self.windows[window.site], window.to_record(), now_ms=int(time.time() * 1000),
                                     retain_ms=self.retain_ms)
                writes.append(await self.windows.put(window.site, kept))
                log.info("maintenance window %s of %s %s: [%d, %d) %s", window.id, window.site,
                         list(window.sensors) or "(whole site)", window.start_ms, window.end_ms,
                         "ended" if window.ended else window.reason)
            except Exception as exc:  # noqa: BLE001 - a bad record must not stop the worker
                writes.append(await self._send(DEADLETTER, None, _dead({
                    "reason": f"bad maintenance record: {exc}",
                    "payload": bytes(rec.value or b"").decode("utf-8", "replace")})))
        await asyncio.gather(*writes)

    async def evaluate(self, records: list[ConsumerRecord], now_ms: int, *, replay: bool = False) -> None:
        # a readings message is keyed by its site: skip the messages that a site's state already
        # reflects (consumed again after a crash, before their offsets were committed)
        keyed = [(r, r.key.decode("utf-8", "replace") if r.key else None) for r in records]
        keyed_sites = {site for _, site in keyed if site in self.sites_known}
        self.load(keyed_sites)  # the runtime windows of these sites, and their state if not loaded yet
        fresh = []
        for r, site in keyed:
            seen = self.offsets.get(site) if site is not None else None
            if seen is not None and seen[0] == r.partition and r.offset <= seen[1]:
                continue
            fresh.append((r, site))
        if len(fresh) < len(records) and not replay:
            log.warning("skipped %d readings message(s) evaluated before a restart", len(records) - len(fresh))
        batch, sites, rejects = decode([r.value for r, _ in fresh])
        self.load(sites - keyed_sites)  # a message whose key is not its site (not from ingest)
        started = time.perf_counter()
        out = self.engine.process(batch, now_ms=now_ms)
        if not replay:
            metrics.observe(len(batch), time.perf_counter() - started, len(rejects) + len(out.rejects))
            sends = [await self._send(DEADLETTER, None, _dead({"reason": reason, "payload": raw.decode("utf-8", "replace")}))
                     for raw, reason in rejects]
            sends += [await self._send(DEADLETTER, None, _dead({"reason": reason, "site": batch.site[i],
                                                                "sensor": batch.sensor[i]}))
                      for i, reason in out.rejects]
            await self._emit(out)
            await asyncio.gather(*sends)
        for r, site in fresh:  # in consumption order: a site's partition's offsets only grow
            if site in self.sites_known:
                self.offsets[site] = [r.partition, r.offset]
        self.dirty.update(sites | {site for _, site in fresh if site in self.sites_known})

    async def rebuild(self) -> None:
        """After a failed batch: the arrays as the changelog says, plus the batches since the last
        snapshot evaluated again without sending anything (their events are out already)."""
        self.loaded.clear()
        self.dirty.clear()
        try:
            for records, now_ms in self.pending:
                await self.evaluate(records, now_ms, replay=True)
        except Exception:  # noqa: BLE001 - cannot happen unless the engine is not deterministic
            log.exception("replaying %d batches after a failed one failed too", len(self.pending))

    async def handle(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self.consumer is not None
        for tp, records in batches.items():
            if tp.topic == MAINTENANCE:
                await self.maintenance(records)
        readings = [r for tp, records in batches.items() if tp.topic == READINGS for r in records]
        if readings:
            now_ms = int(time.time() * 1000)
            try:
                await self.evaluate(readings, now_ms)
            except KafkaError:  # a send Kafka gave up (kafka.idempotence off): stop, nothing is committed,
                raise           # and the restarted worker evaluates the batch again
            except Exception:  # noqa: BLE001 - one bad batch must not stop the worker
                log.exception("batch of %d messages failed; dead-lettering it", len(readings))
                await self.rebuild()
                await asyncio.gather(*[await self._send(DEADLETTER, None, _dead({
                    "reason": "evaluation failed", "payload": r.value.decode("utf-8", "replace")})) for r in readings])
            else:
                self.pending.append((readings, now_ms))
        for tp, records in batches.items():
            self.consumed[tp] = records[-1].offset + 1
            if tp.topic == READINGS and (end := self.consumer.highwater(tp)) is not None:
                metrics.LAG.labels(str(tp.partition)).set(max(0, end - self.consumed[tp]))

    # -- the loop --------------------------------------------------------------------------
    async def take_turn(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self.consumer is not None
        if self.failed is not None:
            raise RuntimeError("the rules state could not be restored") from self.failed
        if not self.ready:
            # fetched on a new assignment before its state is back (aiokafka hands out records of
            # a new assignment before it calls the listener): fetch them again once it is
            for tp, records in batches.items():
                with contextlib.suppress(IllegalStateError):  # not ours any more: nothing to fetch again
                    self.consumer.seek(tp, records[0].offset)
            return
        if batches:
            await self.handle(batches)
        if time.monotonic() - self.last_tick >= TICK_S:
            await self.tick()
        if self.snapshot_work():
            await self.snapshot()

    async def run(self) -> None:
        kafka = self.config.settings.kafka
        # acks=all, idempotent: a retried send is stored once, and a batch is retried until Kafka
        # takes it (a plain aiokafka producer gives a batch up after its request timeout, and a
        # hung Kafka node would then fail a whole turn's events); see KafkaSettings.idempotence
        self.producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all",
                                         enable_idempotence=kafka.idempotence, client_id=f"{self.group}-producer")
        await self.producer.start()
        state_topic, windows_topic = RULES_CHANGELOGS
        self.state = Changelog(state_topic, self.n_partitions, kafka.bootstrap, self.producer, dict, newer)
        self.windows = Changelog(windows_topic, kafka.partitions[MAINTENANCE], kafka.bootstrap, self.producer, list)
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap, group_id=self.group, client_id=self.group,
            enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=6000,
            heartbeat_interval_ms=1000, rebalance_timeout_ms=10000, max_poll_interval_ms=120000,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS, metadata_max_age_ms=METADATA_MAX_AGE_MS,
            # partition i of both topics to the same worker (round robin, the default, would split them)
            partition_assignment_strategy=(RangePartitionAssignor,))
        self.consumer.subscribe([READINGS, MAINTENANCE], listener=self)
        await self.consumer.start()
        kafka_check = KafkaCheck(kafka.bootstrap, client_id=f"{self.group}-health")
        ops = serve_from_env("rules", {"kafka": kafka_check, "state": lambda: None if self.failed is None else
                                       f"the rules state could not be restored: {self.failed!r}"})
        if self.config_dir is not None:  # a reload asked for in the console (hazwatch/control.py)
            self.control = ControlListener(kafka.bootstrap, "rules", lambda _request: self.request_reload(),
                                           since_ms=self.started_ms).start()
        try:
            while not self.stopping.is_set():
                batches = await self.consumer.getmany(timeout_ms=TAKE_WITHIN_MS, max_records=TAKE_MAX)
                async with self.turn:  # a rebalance waits for the end of the turn (rules.handover)
                    await self.take_turn(batches)
                    if self.reload_requested:  # SIGHUP: between turns too (rules.reload)
                        await self.reload()
            async with self.turn:
                if self.ready:
                    await self.snapshot(commit=True)  # a clean stop hands over everything
        finally:
            if self.control is not None:
                self.control.stop()
            if ops is not None:
                ops.shutdown()
            kafka_check.close()
            await self.consumer.stop()  # leaves the group: the others rebalance at once
            await self.producer.stop()


def run_worker(config: Config, *, loglevel: str = "warn", app_id: str = "hazwatch-rules",
               on_ready: Callable[[], None] | None = None, config_dir: Path | None = None) -> None:
    """Run one rules worker until SIGTERM/SIGINT (a clean stop: last snapshot, offsets committed,
    the group left); SIGHUP reads ``config_dir`` again (rules.reload). ``on_ready`` is called after
    each assignment once the state is restored."""
    configure_logging(loglevel)

    async def main() -> None:
        worker = RulesWorker(config, group=app_id, on_ready=on_ready, config_dir=config_dir)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, worker.request_reload)
        await worker.run()

    asyncio.run(main())
