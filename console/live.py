"""The console's live picture of the plant, kept from Kafka by its own reader (no consumer group).

:class:`LiveState` is the pure core: it takes decoded records (``ingest_readings``,
``ingest_warning``, ``ingest_health``) and keeps, per sensor, dense numpy arrays indexed once from
the configuration (sites, then sensors, in configuration order):

- the latest value and its timestamp (epoch ms);
- a trend ring of the last ``history_hours`` (:mod:`console.trend`, allocated on the sensor's
  first reading): ``buckets`` time buckets of equal width, each holding the minimum and the
  maximum reading in it (with their times), so a 24 h chart of a 5 s sensor is at most 2 x 768
  points and never loses a peak;
- the data-quality checks in fault (``offline``, ``stuck``, ``out_of_range``) from health events,
  since when, the last isolated spike, and the offline intervals of the window (for the online rate);

plus the live warnings per site (episode -> level, from warning events) and gateway presence.
Changes are published to subscribers (asyncio queues, one per event stream): ``warning`` and
``health`` events as they come, when they are fresh (emitted in the last minute: a restarted
console replaying 24 h of history must not ring the red banner for old warnings). Readings are not
queued: each reading bumps a per-sensor sequence number that the event streams poll
(:meth:`LiveState.changed_since`), which coalesces them for free.

:class:`console.live_reader.LiveReader` is the thin Kafka shell that feeds it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.models import LEVELS, Config, level_rank
from formats.health import HealthEvent, Presence, SensorHealth
from formats.health import as_dict as health_dict
from formats.readings import Readings
from formats.warning import WarningEvent
from console.trend import TrendRings

__all__ = ["CHECK_BITS", "LiveState", "SensorLive", "Subscription"]

log = logging.getLogger("hazwatch.console.live")

#: Data-quality checks that put a sensor in fault, as bits (rules/quality.py CHECKS).
CHECK_BITS: dict[str, int] = {"offline": 1, "stuck": 2, "out_of_range": 4}
SPIKE_SHOWN_MS = 5 * 60_000
"""How long an isolated spike is shown as the sensor's ``fault`` (it is not a fault state)."""
FRESH_MS = 60_000
"""Warning and health events older than this (by ``emitted_at``/``detected_at``) are history: they
update the state but are not pushed to event streams."""
QUEUE_SIZE = 1000
_NEVER = np.iinfo(np.int64).max


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

    def __init__(self, config: Config, *, history_hours: float = 24.0, buckets: int = 768,
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
        # trend rings, allocated on a sensor's first reading (12 KiB each by default)
        self.trend = TrendRings(n, self.history_ms, buckets)
        # data quality
        self.fault_bits = np.zeros(n, dtype=np.int64)
        self.fault_since = np.full(n, -1, dtype=np.int64)
        self.spike_ms = np.full(n, -1, dtype=np.int64)
        self.health_seen = np.zeros(n, dtype=bool)
        # online rate: arrays the query copies under the lock and sums outside it
        self.first_seen = np.full(n, _NEVER, dtype=np.int64)
        """Per sensor, its earliest record (reading or health event); before it, it is offline."""
        self.offline_since = np.full(n, -1, dtype=np.int64)
        """Per sensor, the start of its current offline interval (-1: not offline)."""
        self._offline_ended: deque[tuple[int, int, int]] = deque()
        """(sensor, start_ms, end_ms) of offline intervals that ended, oldest end first."""
        enterprises = list(dict.fromkeys(s.enterprise for s in config.sites))
        self._enterprises = enterprises
        self._enterprise_of = np.array(
            [enterprises.index(s.enterprise) for s in config.sites for _ in s.sensors], dtype=np.int64)
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

    def ingest_readings(self, msg: Readings) -> int:
        """One decoded ``hazwatch.readings`` record (formats/readings.py: columnar, one site);
        returns readings taken. Readings of unknown sensors, not finite or of bad quality
        (``q`` != 0) are skipped.
        """
        site = msg.site
        sensors = msg.sensor
        ts = np.asarray(msg.ts, dtype=np.int64)
        v = np.asarray(msg.v, dtype=np.float64)
        q = np.asarray(msg.q, dtype=np.int64)
        index = self.index  # looked up outside the lock; a reload (console/reload.py) may replace it
        idx = np.fromiter((index.get((site, s), -1) for s in sensors), dtype=np.int64, count=len(sensors))
        keep = (idx >= 0) & np.isfinite(v) & (q == 0)
        idx, ts, v = idx[keep], ts[keep], v[keep]
        if not len(idx):
            return 0
        with self._lock:
            if self.index is not index:
                stale = True  # the sensors were remapped meanwhile: look them up again
            else:
                stale = False
                self._take(idx, ts, v)
        return self.ingest_readings(msg) if stale else len(idx)

    def _take(self, idx: np.ndarray, ts: np.ndarray, v: np.ndarray) -> None:
        """Readings of known sensors into the picture (the lock held)."""
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
        np.minimum.at(self.first_seen, idx, ts)
        recent = ts >= self.clock() - self.history_ms  # the trend keeps the window only
        self.trend.add(idx[recent], ts[recent], v[recent])

    def ingest_warning(self, event: WarningEvent) -> bool:
        """One warning event (formats/warning.py); returns True when it was pushed to subscribers
        (fresh)."""
        site, episode, level = event.site, event.episode, event.level
        if level not in LEVELS:
            raise ValueError(f"warning event with level {level!r}")
        with self._lock:
            self._seen(int(event.ts or self.clock()))
            live = self.warnings.setdefault(site, {})
            if event.kind == "cleared" or level == "normal":
                live.pop(episode, None)
            else:
                live[episode] = level
        fresh = self.clock() - int(event.emitted_at or 0) <= FRESH_MS
        if fresh:
            name = self.config.site(site).name if _known(self.config, site) else site
            self.publish("warning", {**event.as_dict(), "site_name": name})
        return fresh

    def ingest_health(self, event: HealthEvent) -> bool:
        """One health event (formats/health.py: data quality from rules, or presence from ingest);
        True when pushed."""
        site = event.site
        ts = int(event.ts or self.clock())
        with self._lock:
            self._seen(ts)
            if isinstance(event, Presence):
                self.presence[site] = event.status
                detected = ts
            else:
                i = self.index.get((site, event.sensor))
                if i is None:
                    return False
                self._quality(i, event, ts)
                detected = int(event.detected_at or ts)
        fresh = self.clock() - detected <= FRESH_MS
        if fresh:
            self.publish("health", health_dict(event))  # the record as on the topic
        return fresh

    def _quality(self, i: int, event: SensorHealth, ts: int) -> None:
        check, state = event.check, event.state
        self.health_seen[i] = True
        self.first_seen[i] = min(int(self.first_seen[i]), ts)
        if check == "spike" or state == "spike":
            self.spike_ms[i] = ts
            return
        before = int(self.fault_bits[i])
        active = event.detail.get("active")
        if isinstance(active, list):
            bits = sum(CHECK_BITS.get(c, 0) for c in active)
        else:
            bit = CHECK_BITS.get(str(check), 0)
            bits = before | bit if state == "fault" else before & ~bit
        self.fault_bits[i] = bits
        if bits and not before:
            episode_ts = event.detail.get("episode_ts")
            self.fault_since[i] = int(episode_ts) if isinstance(episode_ts, int) else ts
        elif not bits:
            self.fault_since[i] = -1
        was_off, is_off = bool(before & 1), bool(bits & 1)
        since = int(self.offline_since[i])
        if is_off and not was_off:
            self.offline_since[i] = ts
        elif was_off and not is_off and since >= 0:
            self._offline_ended.append((i, since, max(ts, since)))
            self.offline_since[i] = -1
            # what ended before the window no longer counts (ends come roughly in order)
            cutoff = self.clock() - self.history_ms
            while self._offline_ended and self._offline_ended[0][2] <= cutoff:
                self._offline_ended.popleft()
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
            t, v = self.trend.points(i, since_ms)
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
        # float32 values as their shortest decimal (12.3, not 12.300000190734863)
        return [(a, float(str(b))) for a, b in zip(t.tolist(), v, strict=True)]

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
        (from the earliest record seen, when that is later), and the number of sensors.

        A sensor is offline while a health event says so, and before its first record in the
        window: a sensor that has not reported in the window counts as offline (after a restart
        the console cannot know it was ever up). The arrays are copied under the lock and
        summed outside it."""
        now = self.clock() if now_ms is None else now_ms
        with self._lock:
            first_ms = self.first_ms
            first_seen = self.first_seen.copy()
            since = self.offline_since.copy()
            ended = list(self._offline_ended)
        start = max(now - self.history_ms, first_ms if first_ms is not None else now)
        span = max(now - start, 0)
        down = np.clip(np.minimum(first_seen, now) - start, 0, None).astype(np.float64)
        open_ = since >= 0
        down[open_] += np.clip(now - np.maximum(since[open_], start), 0, None)
        if ended:
            e = np.array(ended, dtype=np.int64)
            np.add.at(down, e[:, 0], np.clip(np.minimum(e[:, 2], now) - np.maximum(e[:, 1], start), 0, None))
        k = len(self._enterprises)
        down_by = np.bincount(self._enterprise_of, weights=down, minlength=k)
        sensors_by = np.bincount(self._enterprise_of, minlength=k)
        out = []
        for e_i, enterprise in enumerate(self._enterprises):
            n = int(sensors_by[e_i])
            rate = 1.0 if span == 0 or n == 0 else 1.0 - float(down_by[e_i]) / (span * n)
            out.append({"enterprise": enterprise, "rate_24h": round(min(max(rate, 0.0), 1.0), 4),
                        "sensors": n})
        return out


def _known(config: Config, site: str) -> bool:
    try:
        config.site(site)
    except KeyError:
        return False
    return True
