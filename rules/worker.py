"""The rules worker: a thin faust shell around :class:`rules.engine.Engine`.

Per micro-batch (``stream.noack_take``): decode the columnar readings, load the state of the sites
in the batch from the changelog-backed table, evaluate, send the warning events and wait for
Kafka's acknowledgement. The new state stays in the engine's arrays; a *snapshot* writes the
state of every site changed since the last one to the table, each with the partition and offset
of the last readings message it reflects, and only then acknowledges the batches it covers, so
faust commits no offset beyond what the table holds. A snapshot is taken every ``SNAPSHOT_S``
(by the batch path or the 1 s timer), after ``SNAPSHOT_MAX_MESSAGES`` unacknowledged messages,
and before a rebalance hands partitions over (faust waits for the acknowledgements).

Why this order survives a crash (SIGKILL) at any point:

- killed before a snapshot: the table and the committed offsets are where the last snapshot left
  them; the readings since are consumed again and give the same events (episode ids are
  deterministic); the alerts outbox recognises their idempotency keys, so nobody is notified twice;
- killed during or after a snapshot, before the offset commit: each site's state records the
  partition and offset of the last readings message it reflects, so the messages Kafka delivers
  again are recognised and skipped -- no event twice, and no already-evaluated reading
  dead-lettered as "late"; faust flushes the producer (the table writes) before it commits.

A batch that raises is dead-lettered; the arrays may hold part of it, so the sites are reloaded
from the table and the batches since the last snapshot are evaluated again, silently (their events
are out already), before the worker goes on.

State store: faust's memory store, rebuilt from the changelog topic at start. The table is keyed
by site id, the same key as ``hazwatch.readings``, so a site's state lives on the partition of its
readings and moves with it on a rebalance. ``use_partitioner=True`` is what lets a table be written
from a ``take()`` batch (docs/ARCHITECTURE.md §15, measured facts).

Runtime maintenance windows (``hazwatch.maintenance``, published by ``alerts.maintenance_feed``
when an operator creates or ends a maintenance silence): a second agent keeps them, per event, in
the table ``maintenance-windows`` (site id -> the last record of each silence id). That topic has
the readings' key and partition count, so faust assigns its partitions with the readings' ones and
the worker that owns a site's readings owns its windows; the changelog brings them back after a
restart. Before a batch and in each tick the engine gets the windows of the sites concerned
(:meth:`Engine.set_site_windows`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable

import faust
import orjson
from kafka.partitioner.default import murmur2

from config.models import Config
from config.topics import DEADLETTER, HEALTH, MAINTENANCE, READINGS, WARNINGS
from rules.engine import Batch, Engine, Output
from rules.maintenance import RuntimeWindow, upsert_window

__all__ = ["build_app", "decode", "run_worker"]

log = logging.getLogger("hazwatch.rules")

TAKE_MAX = 1000
TAKE_WITHIN_S = float(os.environ.get("HAZWATCH_RULES_TAKE_WITHIN_S", "0.02"))
TICK_S = 1.0
SNAPSHOT_S = float(os.environ.get("HAZWATCH_RULES_SNAPSHOT_S", "1.0"))
SNAPSHOT_MAX_MESSAGES = 20_000


def decode(values: Iterable[bytes]) -> tuple[Batch, set[str], list[tuple[bytes, str]]]:
    """``hazwatch.readings`` values -> one columnar batch, its sites, and undecodable messages.

    Each message is decoded once and the batch built once; only when that fails is each message
    tried on its own, to set the bad ones aside."""
    good: list[tuple[bytes, dict]] = []
    rejects: list[tuple[bytes, str]] = []
    for raw in values:
        try:
            good.append((raw, orjson.loads(raw)))
        except orjson.JSONDecodeError as exc:
            rejects.append((raw, f"undecodable readings message: {exc!r}"))
    try:
        return Batch.from_messages(m for _r, m in good), {m["site"] for _r, m in good}, rejects
    except Exception:  # noqa: BLE001 - some message is malformed: find it, keep the others
        pass
    kept: list[dict] = []
    for raw, msg in good:
        try:
            Batch.from_messages([msg])  # validates the columns
            hash(msg["site"])
            kept.append(msg)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the batch
            rejects.append((raw, f"undecodable readings message: {exc!r}"))
    return Batch.from_messages(kept), {m["site"] for m in kept}, rejects


def build_app(config: Config, *, app_id: str = "hazwatch-rules", datadir: str | None = None) -> faust.App:
    """Composition root of the rules worker."""
    # 1. the faust app, tuned for fast group joins on the embedded broker (docs/ARCHITECTURE.md §15)
    kafka = config.settings.kafka
    app = faust.App(
        app_id,
        broker=[f"kafka://{b.strip()}" for b in kafka.bootstrap.split(",")],
        store="memory://",
        topic_partitions=kafka.partitions[READINGS],
        # the changelog and assignor topics faust creates: as many copies as hazwatch's own
        topic_replication_factor=kafka.replication_factor,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=10.0,
        # how often consumed offsets are committed (faust's default 2.8 s); messages consumed after
        # the last commit come again after a crash and are skipped by the offsets in the state
        broker_commit_interval=float(os.environ.get("HAZWATCH_RULES_COMMIT_INTERVAL_S", "2.8")),
        producer_acks=-1,
        web_enabled=False,
        datadir=datadir or os.environ.get("HAZWATCH_DATA_DIR") or tempfile.mkdtemp(prefix="hazwatch-rules-"),
    )
    # 2. topics: raw bytes in and out, orjson does the decoding
    readings = app.topic(READINGS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    warnings = app.topic(WARNINGS, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(DEADLETTER, key_serializer="raw", value_serializer="raw")
    health = app.topic(HEALTH, key_serializer="raw", value_serializer="raw")
    maintenance = app.topic(MAINTENANCE, key_type=bytes, value_type=bytes, key_serializer="raw",
                            value_serializer="raw")
    # 3. durable state: site id -> {"threshold": {"sensor|rule": [...]}, "quality": {...}}.
    #    Keys are the site id's raw bytes, as in the readings topic, so that the producer's
    #    partitioner puts a site's changelog records on its readings partition: faust serialises
    #    a changelog key by the table's key_type (json for str: '"CH-001"' hashes elsewhere), and
    #    after a rebalance it drops the keys whose changelog partition this worker does not own.
    site_key = faust.Schema(key_type=bytes, key_serializer="raw", value_serializer="json")
    state_table = app.Table(
        "threshold-state", default=dict, partitions=kafka.partitions[READINGS], use_partitioner=True,
        key_type=bytes, schema=site_key,
    )
    #    and site id -> runtime maintenance windows (hazwatch.maintenance records), written per
    #    event from that topic, whose partitions are the readings' ones
    windows_table = app.Table(
        "maintenance-windows", default=list, partitions=kafka.partitions[MAINTENANCE],
        key_type=bytes, schema=site_key,
    )
    # a window that ended before the oldest reading ingest accepts can no longer matter
    retain_ms = int(config.settings.ingest.max_age_s * 1000) + 86_400_000
    # 4. the pure engine, under one lock (the agent and the timer share the event loop, not the
    #    arrays). Its arrays hold the state of the sites in ``loaded``: each is imported from the
    #    table once, after a (re)start or rebalance; the sites changed since are ``dirty`` and the
    #    batches not yet covered by a snapshot ``pending`` (module docstring).
    engine = Engine(config)
    engine.warm_up()  # compiled before the first batch, not during it
    engine.start(int(time.time() * 1000))  # sensors never seen count their silence from now
    loaded: set[str] = set()
    offsets: dict[str, list[int]] = {}  # site -> [partition, offset] of its last message in the state
    dirty: set[str] = set()  # sites whose arrays are ahead of the table
    pending: list[tuple[list[faust.types.EventT], int]] = []  # unacknowledged batches and their clock
    last_snapshot = [time.monotonic()]
    agent_stream: list[faust.Stream] = []  # the readings stream, to acknowledge through
    lock = asyncio.Lock()
    ready = asyncio.Event()
    n_partitions = kafka.partitions[READINGS]
    sites_known = {s.id for s in config.sites}

    async def track_changelogs() -> None:
        """Make the producer track the tables' changelog topics before any table write.

        faust's table writes (``use_partitioner=True``) ask aiokafka's producer for a changelog's
        partitions without waiting for its metadata; a producer that does not track the topic yet
        answers None, and the write crashes the worker ("'NoneType' object is not iterable" in
        ``key_partition``, seen on Apache Kafka). Waiting once makes the producer track it for good.
        """
        client = app.producer._ensure_producer().client  # noqa: SLF001 - no public way to ask
        for table in (state_table, windows_table):
            await client._wait_on_metadata(table.changelog_topic.get_topic_name())  # noqa: SLF001

    @app.on_rebalance_complete.connect
    async def _recovered(sender: object, *_args: object, **_kw: object) -> None:
        await track_changelogs()
        ready.set()

    @app.on_partitions_revoked.connect
    async def _revoked(sender: object, *_args: object, **_kw: object) -> None:
        ready.clear()  # no offline check on state that is being moved or recovered
        loaded.clear()  # a site that comes back may have been changed by another worker meanwhile
        dirty.clear()  # faust waited for the acknowledgements: the timer's snapshot took these;
        pending.clear()  # what is left was consumed too late and comes again to the new owner

    def load(sites: Iterable[str]) -> None:
        """The runtime windows of ``sites``, and their state from the table if not loaded yet."""
        for site in sites:
            engine.set_site_windows(site, windows_table[site.encode()])  # no-op when unchanged
            if site not in loaded:
                saved = state_table[site.encode()]
                engine.import_site(site, saved)
                offsets.pop(site, None)
                if saved.get("offset") is not None:
                    offsets[site] = saved["offset"]
                loaded.add(site)

    def save(site: str) -> None:
        """The site's state from the arrays into the table, with the offset it reflects."""
        state = engine.export_site(site)
        if site in offsets:
            state["offset"] = offsets[site]
        state_table[site.encode()] = state

    async def snapshot() -> None:
        """Write every dirty site to the table, then acknowledge the batches that state covers
        (faust flushes the table writes before it commits their offsets). Under the lock."""
        for site in dirty:
            save(site)
        dirty.clear()
        if agent_stream:
            for events, _now in pending:
                for event in events:
                    await agent_stream[0].ack(event)
        pending.clear()
        last_snapshot[0] = time.monotonic()

    def snapshot_due() -> bool:
        return bool(dirty or pending) and (
            time.monotonic() - last_snapshot[0] >= SNAPSHOT_S
            or sum(len(events) for events, _ in pending) >= SNAPSHOT_MAX_MESSAGES)

    def owned_sites() -> list[str]:
        """The configured sites whose readings partition this worker owns (the producer's
        murmur2 partitioner on the site id, as kafka-python and aiokafka both use)."""
        mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == READINGS}
        return [s.id for s in config.sites
                if (murmur2(s.id.encode()) & 0x7FFFFFFF) % n_partitions in mine]

    async def _emit(out: Output) -> None:
        pending = []
        for event in out.warnings:
            pending.append(await warnings.send(key=event.site.encode(), value=event.to_json()))
            log.info("%s %s %s -> %s (%s %s)", event.subject, event.kind, event.previous, event.level,
                     event.value, event.unit)
        for h in out.health:
            pending.append(await health.send(key=h["site"].encode(), value=orjson.dumps(h)))
        for fut in pending:  # the events are in Kafka before the state says they happened
            await fut

    @app.timer(interval=TICK_S)
    async def offline_check() -> None:
        """Offline detection by the wall clock: a silent sensor is noticed without a new message.
        Also the snapshot of a worker whose input went quiet (or that faust waits on to rebalance)."""
        async with lock:
            if snapshot_due():
                await snapshot()
            if not ready.is_set():
                return
            sites = owned_sites()
            load(sites)
            out = engine.tick(int(time.time() * 1000), sites)
            if out.health or out.warnings or out.released:
                await _emit(out)
                dirty.update({h["site"] for h in out.health} | {w.site for w in out.warnings} | set(out.released))

    @app.agent(readings)
    async def evaluate(stream: faust.Stream) -> None:
        agent_stream[:] = [stream]
        async for events in stream.noack_take(TAKE_MAX, within=TAKE_WITHIN_S):
            now_ms = int(time.time() * 1000)
            try:
                await _evaluate(events, now_ms)
            except Exception:  # noqa: BLE001 - an agent that raises loses events (docs/ARCHITECTURE.md §15)
                log.exception("batch of %d messages failed; dead-lettering it", len(events))
                async with lock:
                    await _rebuild()
                for raw in (e.value for e in events):
                    await deadletter.send(value=orjson.dumps({"source": "rules", "reason": "evaluation failed",
                                                              "payload": raw.decode("utf-8", "replace")}))
            async with lock:
                pending.append((events, now_ms))
                if snapshot_due():
                    await snapshot()

    async def _rebuild() -> None:
        """After a failed batch: the arrays as the table says, plus the batches since the last
        snapshot evaluated again without sending anything (their events are out already)."""
        loaded.clear()
        dirty.clear()
        try:
            for events, now_ms in pending:
                await _evaluate(events, now_ms, replay=True, locked=True)
        except Exception:  # noqa: BLE001 - cannot happen unless the engine is not deterministic
            log.exception("replaying %d batches after a failed one failed too", len(pending))

    @app.agent(maintenance)
    async def maintenance_windows(stream: faust.Stream) -> None:
        """Keep each site's runtime windows; a bad record is dead-lettered, never fatal."""
        async for raw in stream:
            await track_changelogs()  # a no-op once tracked
            try:
                record = orjson.loads(raw)
                window = RuntimeWindow.from_record(record)
                key = window.site.encode()
                windows_table[key] = upsert_window(windows_table[key], record, now_ms=int(time.time() * 1000),
                                                   retain_ms=retain_ms)
                log.info("maintenance window %s of %s %s: [%d, %d) %s", window.id, window.site,
                         list(window.sensors) or "(whole site)", window.start_ms, window.end_ms,
                         "ended" if window.ended else window.reason)
            except Exception as exc:  # noqa: BLE001 - an agent that raises loses events (docs/ARCHITECTURE.md §15)
                await deadletter.send(value=orjson.dumps({"source": "rules", "reason": f"bad maintenance record: {exc}",
                                                          "payload": bytes(raw).decode("utf-8", "replace")}))

    async def _evaluate(events: list[faust.types.EventT], now_ms: int, *, replay: bool = False,
                        locked: bool = False) -> None:
        await track_changelogs()  # a no-op once tracked
        async with contextlib.nullcontext() if locked else lock:
            # a readings message is keyed by its site: skip the messages that a site's state
            # already reflects (consumed again after a crash, before their offsets were committed)
            keyed = [(e, e.message.key.decode("utf-8", "replace") if e.message.key else None) for e in events]
            keyed_sites = {site for _, site in keyed if site in sites_known}
            load(keyed_sites)  # the runtime windows of these sites, and their state if not loaded yet
            fresh: list[tuple[faust.types.EventT, str | None]] = []
            for e, site in keyed:
                seen = offsets.get(site) if site is not None else None
                if seen is not None and seen[0] == e.message.partition and e.message.offset <= seen[1]:
                    continue
                fresh.append((e, site))
            if len(fresh) < len(events) and not replay:
                log.warning("skipped %d readings message(s) evaluated before a restart", len(events) - len(fresh))
            batch, sites, rejects = decode([e.value for e, _ in fresh])
            load(sites - keyed_sites)  # a message whose key is not its site (not from ingest)
            out = engine.process(batch, now_ms=now_ms)
            if not replay:
                for raw, reason in rejects:
                    await deadletter.send(value=orjson.dumps({"source": "rules", "reason": reason,
                                                              "payload": raw.decode("utf-8", "replace")}))
                for i, reason in out.rejects:
                    await deadletter.send(value=orjson.dumps({"source": "rules", "reason": reason,
                                                              "site": batch.site[i], "sensor": batch.sensor[i]}))
                await _emit(out)
            for e, site in fresh:  # in consumption order: a site's partition's offsets only grow
                if site in sites_known:
                    offsets[site] = [e.message.partition, e.message.offset]
            dirty.update(sites | {site for _, site in fresh if site in sites_known})

    return app


def run_worker(
    config: Config, *, loglevel: str = "warn", app_id: str = "hazwatch-rules",
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Run one rules worker until SIGTERM/SIGINT (faust handles the signals and shuts down cleanly).

    ``on_ready`` is called after each rebalance once the tables are recovered.
    """
    app = build_app(config, app_id=app_id)
    if on_ready is not None:
        @app.on_rebalance_complete.connect
        async def _ready(sender: object, **_kw: object) -> None:
            log.info("partitions assigned and state recovered")
            on_ready()

    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
