"""The console's live picture of the plant, kept from Kafka by its own reader (no consumer group).

:class:`LiveState` is the pure core: it takes decoded records (``ingest_readings``,
``ingest_warning``, ``ingest_health``) and keeps, per sensor, dense numpy arrays indexed once from
the configuration (sites, then sensors, in configuration order):

- the latest value and its timestamp (epoch ms);
- a trend ring of the last ``history_hours``: ``buckets`` time buckets of equal width, each holding
  the minimum and the maximum reading in it (with their times), so a 24 h chart of a 5 s sensor is
  at most 2 x 1024 points and never loses a peak;
- the data-quality checks in fault (``offline``, ``stuck``, ``out_of_range``) from health events,
  since when, the last isolated spike, and the offline intervals of the window (for the online rate);

plus the live warnings per site (episode -> level, from warning events) and gateway presence.
Changes are published to subscribers (asyncio queues, one per event stream): ``warning`` and
``health`` events as they come, when they are fresh (emitted in the last minute: a restarted
console replaying 24 h of history must not ring the red banner for old warnings). Readings are not
queued: each reading bumps a per-sensor sequence number that the event streams poll
(:meth:`LiveState.changed_since`), which coalesces them for free.

:class:`LiveReader` is the thin Kafka shell: a thread that assigns every partition of readings,
warnings and health, seeks each to *now - history* by timestamp (``offsets_for_times``), then
follows, decoding each record and handing it to the state. A record that does not decode is
counted and skipped (the console is a reader; the dead-letter topic is the writers' business).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from config.models import LEVELS, Config, level_rank
from config.topics import HEALTH, PARTITIONS, READINGS, WARNINGS

__all__ = ["CHECK_BITS", "LiveReader", "LiveState", "SensorLive", "Subscription"]

log = logging.getLogger("hazwatch.console.live")

#: Data-quality checks that put a sensor in fault, as bits (rules/quality.py CHECKS).
CHECK_BITS: dict[str, int] = {"offline": 1, "stuck": 2, "out_of_range": 4}
SPIKE_SHOWN_MS = 5 * 60_000
"""How long an isolated spike is shown as the sensor's ``fault`` (it is not a fault state)."""
FRESH_MS = 60_000
"""Warning and health events older than this (by ``emitted_at``/``detected_at``) are history: they
update the state but are not pushed to event streams."""
QUEUE_SIZE = 1000


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class Subscription:
    """One event stream's queue. ``overflowed``: it fell behind and should reconnect."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def _put(self, item: tuple[str, dict[str, Any]]) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


@dataclass(frozen=True)
class SensorLive:
    """What the console shows of one sensor now."""

    site: str
    sensor: str
    value: float | None
    ts_ms: int | None
    status: str
    """ok | offline | fault | unknown"""
    fault: str | None
    """stuck | out_of_range | spike | offline, or None"""
    since_ms: int | None
    """Since when the sensor is in its current fault (None when ok)."""


class LiveState:
    """The live picture; thread-safe (the reader thread writes, request handlers read)."""

    def __init__(self, config: Config, *, history_hours: float = 24.0, buckets: int = 1024,
                 clock: Callable[[], int] = _now_ms) -> None:
        self.config = config
        self.clock = clock
        self.history_ms = int(history_hours * 3_600_000)
        self.keys: list[tuple[str, str]] = [(s.id, x.id) for s in config.sites for x in s.sensors]
        self.index: dict[tuple[str, str], int] = {k: i for i, k in enumerate(self.keys)}
        self.site_rows: dict[str, np.ndarray] = {
            s.id: np.array([self.index[(s.id, x.id)] for x in s.sensors], dtype=np.int64)
            for s in config.sites}
        n = len(self.keys)
        self._lock = threading.Lock()
        # latest value per sensor; seq: global change counter at the sensor's last change
        self.latest_v = np.full(n, np.nan)
        self.latest_ts = np.full(n, -1, dtype=np.int64)
        self.seq = np.zeros(n, dtype=np.int64)
        self._seq = 0
        # trend ring: bucket b = ts // width lives in slot b % buckets
        self.nb = buckets
        self.width_ms = max(1, self.history_ms // buckets)
        self.bucket = np.full((n, buckets), -1, dtype=np.int64)
        self.tmin = np.zeros((n, buckets), dtype=np.int64)
        self.vmin = np.full((n, buckets), np.inf)
        self.tmax = np.zeros((n, buckets), dtype=np.int64)
        self.vmax = np.full((n, buckets), -np.inf)
        # data quality
        self.fault_bits = np.zeros(n, dtype=np.int64)
        self.fault_since = np.full(n, -1, dtype=np.int64)
        self.spike_ms = np.full(n, -1, dtype=np.int64)
        self.health_seen = np.zeros(n, dtype=bool)
        self.offline: list[list[list[int]]] = [[] for _ in range(n)]
        """Per sensor, offline intervals [start_ms, end_ms] (end -1 while still offline)."""
        self.first_ms: int | None = None
        """Time of the earliest record seen: the online rate's window starts no earlier."""
        # warnings and presence
        self.warnings: dict[str, dict[str, str]] = {s.id: {} for s in config.sites}
        """site -> {episode: level} of live (not cleared) warnings."""
        self.presence: dict[str, str] = {}
        self.records = 0
        self.errors = 0
        self._subscribers: set[Subscription] = set()

    # -- subscribers --------------------------------------------------------------------------
    def subscribe(self) -> Subscription:
        """A new subscription on the running event loop (call from a coroutine)."""
        sub = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def publish(self, name: str, data: dict[str, Any]) -> None:
        """Hand an event to every subscriber; safe from any thread."""
        with self._lock:
            subs = list(self._subscribers)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._put, (name, data))
            except RuntimeError:  # its loop is closed: the stream is gone
                self.unsubscribe(sub)

    # -- ingest -------------------------------------------------------------------------------
    def _seen(self, ts: int) -> None:
        if self.first_ms is None or ts < self.first_ms:
            self.first_ms = ts

    def ingest_readings(self, msg: Mapping[str, Any]) -> int:
        """One ``hazwatch.readings`` message (columnar, one site); returns readings taken.

        Readings of unknown sensors, not finite or of bad quality (``q`` != 0) are skipped.
        """
        site = msg["site"]
        sensors = msg["sensor"]
        ts = np.asarray(msg["ts"], dtype=np.int64)
        v = np.asarray(msg["v"], dtype=np.float64)
        q = np.asarray(msg.get("q") or np.zeros(len(ts)), dtype=np.int64)
        if not (len(sensors) == len(ts) == len(v) == len(q)):
            raise ValueError("readings message columns differ in length")
        idx = np.fromiter((self.index.get((site, s), -1) for s in sensors), dtype=np.int64,
                          count=len(sensors))
        keep = (idx >= 0) & np.isfinite(v) & (q == 0)
        idx, ts, v = idx[keep], ts[keep], v[keep]
        if not len(idx):
            return 0
        with self._lock:
            self._seen(int(ts.min()))
            # latest: per sensor its newest reading, when newer than what we have
            o = np.lexsort((ts, idx))
            last = np.r_[idx[o][1:] != idx[o][:-1], True]
            li, lt, lv = idx[o][last], ts[o][last], v[o][last]
            newer = lt >= self.latest_ts[li]  # equal times: the later-arriving reading wins
            if newer.any():
                self._seq += 1
                self.latest_ts[li[newer]] = lt[newer]
                self.latest_v[li[newer]] = lv[newer]
                self.seq[li[newer]] = self._seq
            recent = ts >= self.clock() - self.history_ms  # the trend keeps the window only
            self._into_buckets(idx[recent], ts[recent], v[recent])
        return len(idx)

    def _into_buckets(self, idx: np.ndarray, ts: np.ndarray, v: np.ndarray) -> None:
        if not len(idx):
            return
        b = ts // self.width_ms
        flat = idx * self.nb + b % self.nb
        bucket, vmin, vmax = self.bucket.reshape(-1), self.vmin.reshape(-1), self.vmax.reshape(-1)
        tmin, tmax = self.tmin.reshape(-1), self.tmax.reshape(-1)
        before = bucket[flat].copy()
        np.maximum.at(bucket, flat, b)  # a slot moves on to the newest bucket mapped onto it
        moved = flat[bucket[flat] != before]
        vmin[moved], vmax[moved] = np.inf, -np.inf
        keep = b == bucket[flat]  # readings of a bucket already overwritten are too old
        f, t, x = flat[keep], ts[keep], v[keep]
        if not len(f):
            return
        for sign, tv, vv in ((1.0, tmin, vmin), (-1.0, tmax, vmax)):
            o = np.lexsort((sign * x, f))
            fs = f[o]
            first = np.r_[True, fs[1:] != fs[:-1]]
            cf, ct, cv = fs[first], t[o][first], x[o][first]
            better = sign * cv < sign * vv[cf]
            vv[cf[better]], tv[cf[better]] = cv[better], ct[better]

    def ingest_warning(self, event: Mapping[str, Any]) -> bool:
        """One warning event; returns True when it was pushed to subscribers (fresh)."""
        site, episode, level = event["site"], event["episode"], event["level"]
        if level not in LEVELS:
            raise ValueError(f"warning event with level {level!r}")
        with self._lock:
            self._seen(int(event.get("ts") or self.clock()))
            live = self.warnings.setdefault(site, {})
            if event.get("kind") == "cleared" or level == "normal":
                live.pop(episode, None)
            else:
                live[episode] = level
        fresh = self.clock() - int(event.get("emitted_at") or 0) <= FRESH_MS
        if fresh:
            name = self.config.site(site).name if _known(self.config, site) else site
            self.publish("warning", {**event, "site_name": name})
        return fresh

    def ingest_health(self, event: Mapping[str, Any]) -> bool:
        """One health event (data quality from rules, or presence from ingest); True when pushed."""
        site = event["site"]
        ts = int(event.get("ts") or self.clock())
        with self._lock:
            self._seen(ts)
            if event.get("kind") == "presence":
                self.presence[site] = str(event.get("status"))
            else:
                i = self.index.get((site, str(event.get("sensor"))))
                if i is None:
                    return False
                self._quality(i, event, ts)
        fresh = self.clock() - int(event.get("detected_at") or ts) <= FRESH_MS
        if fresh:
            self.publish("health", dict(event))
        return fresh

    def _quality(self, i: int, event: Mapping[str, Any], ts: int) -> None:
        check, state = event.get("check"), event.get("state")
        self.health_seen[i] = True
        if check == "spike" or state == "spike":
            self.spike_ms[i] = ts
            return
        before = int(self.fault_bits[i])
        active = (event.get("detail") or {}).get("active")
        if isinstance(active, list):
            bits = sum(CHECK_BITS.get(c, 0) for c in active)
        else:
            bit = CHECK_BITS.get(str(check), 0)
            bits = before | bit if state == "fault" else before & ~bit
        self.fault_bits[i] = bits
        if bits and not before:
            episode_ts = (event.get("detail") or {}).get("episode_ts")
            self.fault_since[i] = int(episode_ts) if isinstance(episode_ts, int) else ts
        elif not bits:
            self.fault_since[i] = -1
        was_off, is_off = bool(before & 1), bool(bits & 1)
        intervals = self.offline[i]
        if is_off and not was_off:
            intervals.append([ts, -1])
        elif was_off and not is_off and intervals and intervals[-1][1] == -1:
            intervals[-1][1] = max(ts, intervals[-1][0])
        self._seq += 1
        self.seq[i] = self._seq

    # -- queries ------------------------------------------------------------------------------
    def sensor(self, site: str, sensor: str) -> SensorLive:
        i = self.index[(site, sensor)]
        now = self.clock()
        with self._lock:
            ts = int(self.latest_ts[i])
            value = float(self.latest_v[i]) if ts >= 0 else None
            bits, since, spike = int(self.fault_bits[i]), int(self.fault_since[i]), int(self.spike_ms[i])
            seen = ts >= 0 or bool(self.health_seen[i])
        if bits & 1:
            status, fault = "offline", "offline"
        elif bits:
            status = "fault"
            fault = next(c for c, bit in CHECK_BITS.items() if bits & bit)
        else:
            status = "ok" if seen else "unknown"
            fault = "spike" if spike >= 0 and now - spike <= SPIKE_SHOWN_MS else None
        return SensorLive(site, sensor, value, ts if ts >= 0 else None, status, fault,
                          since if bits else None)

    def sensors(self, sites: set[str] | None = None) -> list[SensorLive]:
        return [self.sensor(site, sensor) for site, sensor in self.keys
                if sites is None or site in sites]

    def site_level(self, site: str) -> str:
        """The highest level among the site's live warnings (``normal`` without any)."""
        with self._lock:
            levels = list(self.warnings.get(site, {}).values())
        return max(levels, key=level_rank) if levels else "normal"

    def site_offline(self, site: str) -> bool:
        """True when the gateway reported offline, or every sensor of the site is offline."""
        rows = self.site_rows.get(site)
        with self._lock:
            if self.presence.get(site) == "offline":
                return True
            return rows is not None and len(rows) > 0 and bool(np.all(self.fault_bits[rows] & 1))

    def series(self, site: str, sensor: str, since_ms: int,
               max_points: int = 2000) -> list[tuple[int, float]]:
        """Trend points since ``since_ms``, oldest first: each bucket's minimum and maximum,
        evenly thinned to at most ``max_points``."""
        i = self.index[(site, sensor)]
        with self._lock:
            sel = self.bucket[i] >= since_ms // self.width_ms
            t = np.concatenate([self.tmin[i][sel], self.tmax[i][sel]])
            v = np.concatenate([self.vmin[i][sel], self.vmax[i][sel]])
        ok = np.isfinite(v) & (t >= since_ms)
        t, v = t[ok], v[ok]
        if not len(t):
            return []
        o = np.lexsort((v, t))
        t, v = t[o], v[o]
        distinct = np.r_[True, (t[1:] != t[:-1]) | (v[1:] != v[:-1])]
        t, v = t[distinct], v[distinct]
        if len(t) > max_points:
            pick = np.unique(np.linspace(0, len(t) - 1, max_points).round().astype(np.int64))
            t, v = t[pick], v[pick]
        return [(int(a), float(b)) for a, b in zip(t, v, strict=True)]

    def changed_since(self, seq: int, sites: set[str] | None = None) -> tuple[int, list[dict[str, Any]]]:
        """Readings of sensors whose latest value changed after ``seq``: (new seq, readings)."""
        with self._lock:
            current = self._seq
            rows = np.nonzero((self.seq > seq) & (self.latest_ts >= 0))[0]
            out = [{"site": self.keys[r][0], "sensor": self.keys[r][1],
                    "ts_ms": int(self.latest_ts[r]), "value": float(self.latest_v[r])}
                   for r in rows if sites is None or self.keys[r][0] in sites]
        return current, out

    @property
    def current_seq(self) -> int:
        with self._lock:
            return self._seq

    def online_rate(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """Per enterprise: the fraction of sensor-time not offline over the history window
        (from the earliest record seen, when that is later), and the number of sensors."""
        now = self.clock() if now_ms is None else now_ms
        with self._lock:
            start = max(now - self.history_ms, self.first_ms if self.first_ms is not None else now)
            span = max(now - start, 0)
            down = np.zeros(len(self.keys))
            for i, intervals in enumerate(self.offline):
                # prune what ended before the window
                intervals[:] = [iv for iv in intervals if iv[1] == -1 or iv[1] > now - self.history_ms]
                for a, b in intervals:
                    end = now if b == -1 else b
                    down[i] += max(0, min(end, now) - max(a, start))
        by: dict[str, list[int]] = {}
        for s in self.config.sites:
            by.setdefault(s.enterprise, []).extend(int(r) for r in self.site_rows[s.id])
        out = []
        for enterprise, rows in by.items():
            rate = 1.0 if span == 0 else 1.0 - float(down[rows].sum()) / (span * len(rows))
            out.append({"enterprise": enterprise, "rate_24h": round(min(max(rate, 0.0), 1.0), 4),
                        "sensors": len(rows)})
        return out


def _known(config: Config, site: str) -> bool:
    try:
        config.site(site)
    except KeyError:
        return False
    return True


class LiveReader:
    """The Kafka shell around :class:`LiveState`: a daemon thread, no consumer group."""

    TOPICS = (READINGS, WARNINGS, HEALTH)

    def __init__(self, bootstrap: str, state: LiveState) -> None:
        self.bootstrap = bootstrap
        self.state = state
        self.stopping = threading.Event()
        self.assigned = threading.Event()
        """Set once every partition is assigned and positioned (the reader is following)."""
        self._thread: threading.Thread | None = None

    def start(self) -> LiveReader:
        self._thread = threading.Thread(target=self._run, name="console-live-reader", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _consumer(self) -> Any:
        from kafka import KafkaConsumer, TopicPartition

        while not self.stopping.is_set():
            try:
                consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                         enable_auto_commit=False, auto_offset_reset="earliest",
                                         client_id="hazwatch-console")
                break
            except Exception as exc:  # noqa: BLE001 - broker not up yet: try again
                log.warning("Kafka at %s not reachable (%s); retrying", self.bootstrap, exc)
                self.stopping.wait(2.0)
        else:
            return None
        tps = [TopicPartition(t, p) for t in self.TOPICS for p in range(PARTITIONS[t])]
        consumer.assign(tps)
        start = self.state.clock() - self.state.history_ms
        try:
            found = consumer.offsets_for_times({tp: start for tp in tps})
            for tp in tps:
                at = found.get(tp)
                if at is None:
                    consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, at.offset)
        except Exception as exc:  # noqa: BLE001 - a broker without timestamp lookup: read all
            log.warning("offsets_for_times failed (%s); reading from the beginning", exc)
            consumer.seek_to_beginning(*tps)
        return consumer

    def _run(self) -> None:
        consumer = self._consumer()
        if consumer is None:
            return
        self.assigned.set()
        start = self.state.clock() - self.state.history_ms
        try:
            while not self.stopping.is_set():
                for records in consumer.poll(timeout_ms=200).values():
                    for rec in records:
                        if rec.timestamp is not None and 0 < rec.timestamp < start:
                            continue  # before the window (after a fall-back to the beginning)
                        self.handle(rec.topic, rec.value)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()

    def handle(self, topic: str, value: bytes) -> None:
        """Decode one record and give it to the state; count and skip what does not decode."""
        try:
            obj = orjson.loads(value)
            if topic == READINGS:
                self.state.ingest_readings(obj)
            elif topic == WARNINGS:
                self.state.ingest_warning(obj)
            elif topic == HEALTH:
                self.state.ingest_health(obj)
            self.state.records += 1
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the reader
            self.state.errors += 1
            log.warning("skipped an undecodable %s record: %r", topic, exc)
