"""The rule engine: every rule kind over one columnar micro-batch. Pure (no faust, kafka, MQTT).

Stages: data quality (out of range, stuck, spike, offline by the clock: quarantine, health
events, equipment-fault warnings), then the threshold ladders, the rainfall windows, rates of
change and trend forecasts, and last the site rules (k-of-n voting, GB 39496 aggregation,
composites) over the level changes of the stages before.

The same engine runs in the stream (``rules.worker``, a thin faust shell) and offline
(``hazwatch replay``), so a replay of last season's readings gives exactly the warnings the
stream gave. Time is event time: rules use reading timestamps; ``now_ms`` is only stamped on
events as ``emitted_at``.

Input policy, per reading (``Batch``):

- quality code != 0: the device says the reading is bad; it is not evaluated;
- inside a maintenance or calibration window of its sensor (``rules.maintenance``: from
  ``sites.yaml``, or given at run time by :meth:`Engine.set_site_windows`): not evaluated, and a
  health event says why;
- unknown (site, sensor): rejected with a reason (ingest should have caught it);
- the same timestamp as the sensor's newest evaluated reading: a duplicate (Kafka redelivery after
  a crash); ignored, state updates are idempotent;
- older than a reading of the same sensor that *arrived before it*: *late*; rejected with a
  reason (the worker dead-letters it), whatever the micro-batch boundaries are -- so a replay
  gives the same result for any batch size. The rules never rewrite a decision already taken,
  and a late reading is visible in the dead-letter topic;
- a sensor with ``allowed_lateness_s > 0`` puts its readings through a reorder buffer first
  (``rules.lateness``): out-of-order arrival within that lateness is evaluated in timestamp
  order, older readings are late as above.

State lives in preallocated arrays indexed by dense row numbers; ``export_site`` and
``import_site`` move one site's state in and out as plain JSON-able data (the worker keeps it in a
changelog-backed faust table keyed by site id).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.models import Config
from formats.maintenance import RuntimeWindow
from formats.warning import WarningEvent
from rules.batch import Batch
from rules.lateness import ReorderBuffer
from rules.maintenance import MaintenanceTable
from rules.quality import FAULT_RULE, QualityEngine, QualityTable, fault_warnings
from rules.rain import RainEngine, RainTable
from rules.rate import RateEngine, RateTable
from rules.site import SiteStage
from rules.threshold import ThresholdEngine, ThresholdTable
from rules.trend import TrendEngine, TrendTable

__all__ = ["Engine", "EngineStats", "Output"]


@dataclass
class EngineStats:
    readings: int = 0
    evaluated: int = 0
    bad_quality: int = 0
    unknown: int = 0
    quarantined: int = 0
    late: int = 0
    maintenance: int = 0
    duplicates: int = 0


@dataclass
class Output:
    warnings: list[WarningEvent] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)
    """(index in the batch, reason) of readings that cannot be evaluated."""
    released: list[str] = field(default_factory=list)
    """Sites whose held readings a clock tick released (their state changed)."""


def _newest_before(idx: np.ndarray, ts: np.ndarray, good: np.ndarray, last_ts: np.ndarray) -> np.ndarray:
    """For each reading, the newest timestamp of its sensor among the state and the readings that
    arrived before it in the batch (vectorised: a cumulative max per sensor group)."""
    out = np.full(len(ts), -1, dtype=np.int64)
    gi = np.flatnonzero(good)
    if len(gi) == 0:
        return out
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        # time-ordered arrival (the common case): no reading is older than an earlier one of
        # the batch, so the sensor's state alone decides
        out[gi] = last_ts[idx[gi]]
        return out
    order = gi[np.lexsort((gi, idx[gi]))]  # by sensor, then arrival
    sensors = idx[order]
    starts = np.r_[True, sensors[1:] != sensors[:-1]]
    group = np.cumsum(starts) - 1
    span = np.int64(1) << 42  # > any epoch-ms timestamp: groups do not mix in the running max
    shifted = ts[order] + group * span
    running = np.maximum.accumulate(shifted) - group * span
    prev = np.r_[np.int64(-1), running[:-1]]
    prev[starts] = -1
    out[order] = np.maximum(prev, last_ts[sensors])
    return out


class Engine:
    """Stages, in order: data quality (quarantine, health events, equipment faults), then the
    threshold ladders on the readings quality let through."""

    def __init__(self, config: Config, *, started_ms: int | None = None) -> None:
        """``started_ms``: when the engine started (wall clock in the stream, the first reading's
        time in a replay); sensors never seen are offline only after their grace from then. By
        default, the ``now_ms`` of the first batch."""
        self.config = config
        self.thresholds = ThresholdTable.from_config(config)
        self.threshold = ThresholdEngine(self.thresholds)
        self.quality_table = QualityTable.from_config(config)
        self.quality: QualityEngine | None = None
        self._started_ms = started_ms
        if started_ms is not None:
            self.quality = QualityEngine(self.quality_table, started_ms=started_ms)
        self.rains = RainTable.from_config(config)
        self.rain = RainEngine(self.rains)
        self.rates = RateTable.from_config(config)
        self.rate = RateEngine(self.rates)
        self.trends = TrendTable.from_config(config)
        self.trend = TrendEngine(self.trends)
        self.site_rules = SiteStage(config)
        self.maintenance = MaintenanceTable.from_config(config, self.thresholds.sensor_index)
        lateness = np.zeros(len(self.thresholds.sensor_index), dtype=np.int64)
        self._site_of: list[str] = [""] * len(lateness)
        self._sensor_of: list[str] = [""] * len(lateness)
        for (site, sensor), i in self.thresholds.sensor_index.items():
            lateness[i] = round(config.sensor(site, sensor).allowed_lateness_s * 1000)  # type: ignore[union-attr]
            self._site_of[i], self._sensor_of[i] = site, sensor
        self.reorder = ReorderBuffer(lateness)
        self.stats = EngineStats()
        self._by_site: dict[str, dict[str, int]] = {}
        for (site, sensor), i in self.thresholds.sensor_index.items():
            self._by_site.setdefault(site, {})[sensor] = i

    def _dense(self, batch: Batch) -> np.ndarray:
        """Dense sensor indices (-1: unknown): ingest's, when it ran the same configuration (the
        fingerprint says so); otherwise looked up. Batches come in runs of one site (a readings
        message is one site), so each run is looked up in that site's small table."""
        if batch.idx is not None and batch.cfg == self.config.sensor_fingerprint and len(batch.idx) == len(batch):
            idx = batch.idx
            return np.where((idx >= 0) & (idx < len(self._site_of)), idx, -1)
        out = np.empty(len(batch), dtype=np.int64)
        pos = 0
        for site, run in itertools.groupby(batch.site):
            m = sum(1 for _ in run)
            table = self._by_site.get(site, {})
            out[pos:pos + m] = np.fromiter(map(table.get, batch.sensor[pos:pos + m], itertools.repeat(-1)),
                                           np.int64, m)
            pos += m
        return out

    def start(self, started_ms: int) -> None:
        """Set when the engine started (see ``__init__``), if the constructor was not told."""
        self._quality(started_ms)

    def warm_up(self) -> None:
        """Compile the stages' loops (:mod:`rules.kernels`) now rather than on the first batch:
        about 4 s on a machine's first run, then ~0.2 s from numba's disk cache. Runs every stage
        on no readings (nothing changes), with the engine's own arrays, so the compiled types are
        the ones the batches will use."""
        i, t, v = np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
        quality = self.quality or QualityEngine(self.quality_table, started_ms=0)
        quality.process(i, t, v, 0, ordered=True)
        for stage in (self.threshold, self.rain, self.rate, self.trend):
            stage.process(i, t, v, ordered=True)

    def set_site_windows(self, site: str, windows: Sequence[RuntimeWindow | dict[str, Any]]) -> None:
        """The runtime maintenance windows of ``site`` (``hazwatch.maintenance`` records), in force
        from the next batch or tick together with its ``sites.yaml`` windows; replaces the ones
        given before. Unchanged windows cost a list comparison."""
        self.maintenance.set_site(site, windows, self._by_site.get(site, {}))

    def _quality(self, now_ms: int) -> QualityEngine:
        if self.quality is None:
            self.quality = QualityEngine(self.quality_table, started_ms=now_ms)
        return self.quality

    # -- evaluation -----------------------------------------------------------------------------
    def process(self, batch: Batch, now_ms: int) -> Output:
        self.stats.readings += len(batch)
        idx = self._dense(batch)
        if not self.reorder:
            return self._evaluate(batch, idx, now_ms)
        # allowed lateness: readings of buffered sensors wait in the reorder buffer
        good = (idx >= 0) & (batch.q == 0)
        buf = np.zeros(len(batch), dtype=bool)
        buf[good] = self.reorder.buffered(idx[good])
        bi = np.flatnonzero(buf)
        rejects: list[tuple[int, str]] = []
        if len(bi):
            newest = _newest_before(idx[bi], batch.ts[bi], np.ones(len(bi), dtype=bool), self.reorder.watermark)
            too_late, dup = self.reorder.admit(idx[bi], batch.ts[bi], batch.v[bi], newest)
            self._quality(now_ms).state.last_seen_ms[idx[bi[~too_late]]] = now_ms  # alive, if held
            for j in np.flatnonzero(too_late):
                i, lateness = int(bi[j]), int(self.reorder.lateness_ms[idx[bi[j]]])
                rejects.append((i, f"late reading: ts {int(batch.ts[i])} of {batch.site[i]}/{batch.sensor[i]} is "
                                   f"beyond the allowed lateness of {lateness / 1000:g} s (newest reading of the "
                                   f"sensor: {int(max(newest[j], self.reorder.released[idx[i]]))}); not evaluated"))
            self.stats.late += int(too_late.sum())
            self.stats.duplicates += int(dup.sum())
        passed = np.flatnonzero(~buf)
        r_idx, r_ts, r_v = self.reorder.release()
        out = self._evaluate(self._combined(batch, passed, r_idx, r_ts, r_v), np.r_[idx[passed], r_idx], now_ms)
        out.rejects = sorted(rejects + [(int(passed[i]), why) for i, why in out.rejects])
        return out

    def _combined(self, batch: Batch, passed: np.ndarray, idx: np.ndarray, ts: np.ndarray, v: np.ndarray) -> Batch:
        """The readings of ``batch`` at ``passed`` followed by released ones (dense index, ts, v)."""
        return Batch([batch.site[i] for i in passed] + [self._site_of[i] for i in idx],
                     [batch.sensor[i] for i in passed] + [self._sensor_of[i] for i in idx],
                     np.r_[batch.ts[passed], ts], np.r_[batch.v[passed], v],
                     np.r_[batch.q[passed], np.zeros(len(idx), dtype=np.int64)])

    def _released(self, released: tuple[np.ndarray, np.ndarray, np.ndarray], now_ms: int) -> Output:
        idx, ts, v = released
        if not len(idx):
            return Output()
        empty = Batch([], [], np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64))
        return self._evaluate(self._combined(empty, np.empty(0, np.int64), idx, ts, v), idx, now_ms)

    def flush(self, now_ms: int) -> Output:
        """End of a replay: evaluate every reading still waiting out its allowed lateness."""
        return self._released(self.reorder.release_all(), now_ms) if self.reorder else Output()

    def _evaluate(self, batch: Batch, idx: np.ndarray, now_ms: int) -> Output:
        out = Output()
        unknown = np.flatnonzero(idx < 0)
        for i in unknown:
            out.rejects.append((int(i), f"unknown sensor {batch.sensor[i]!r} at site {batch.site[i]!r}"))
        good = (idx >= 0) & (batch.q == 0)
        self.stats.unknown += len(unknown)
        self.stats.bad_quality += int(((idx >= 0) & (batch.q != 0)).sum())
        # 1. data quality: faulty readings are quarantined, faults become health events and
        #    equipment-fault warnings for the officers
        quality = self._quality(now_ms)
        if self.maintenance or self.maintenance.announced:  # inside a window: alive, not evaluated
            entries = self.maintenance.inside(idx, batch.ts)
            held = np.flatnonzero(good & (entries >= 0))
            if len(held):
                quality.state.last_seen_ms[idx[held]] = now_ms
                out.health.extend(self.maintenance.announce(entries, held, list(batch.site), list(batch.sensor),
                                                            batch.ts, batch.v, now_ms))
            if self.maintenance.announced:  # the first reading after an announced window says so
                out.health.extend(self.maintenance.conclude(np.flatnonzero(good & (entries < 0)), idx,
                                                            list(batch.site), list(batch.sensor), batch.ts,
                                                            batch.v, now_ms))
            if len(held):
                good[held] = False
                self.stats.maintenance += len(held)
        # late: older than the sensor's newest evaluated reading (a same-time repeat is a
        # redelivery and is silently idempotent); rejected with a reason, never evaluated
        newest = _newest_before(idx, batch.ts, good, quality.state.last_ts)
        late = good & (batch.ts < newest)
        for i in np.flatnonzero(late):
            last = int(newest[i])
            out.rejects.append((int(i), f"late reading: ts {int(batch.ts[i])} is {(last - int(batch.ts[i])) / 1000:g} s "
                                        f"older than an earlier reading of {batch.site[i]}/{batch.sensor[i]} "
                                        "(or redelivered after a restart; it was not evaluated now)"))
        self.stats.late += int(late.sum())
        good &= ~late
        gi = np.flatnonzero(good)
        stale_before = quality.ignored_stale
        # each sensor's readings now come in ts order (the late check): the stages need no sort
        quarantined, health = quality.process(idx[gi], batch.ts[gi], batch.v[gi], now_ms, ordered=True)
        redelivered = quality.ignored_stale - stale_before  # not evaluated, but not in fault either
        out.health.extend(health)
        out.warnings.extend(fault_warnings(health, self.config))
        ev = gi[~quarantined]
        self.stats.quarantined += int(quarantined.sum()) - redelivered
        self.stats.evaluated += len(ev)
        e_idx, e_ts, e_v = idx[ev], batch.ts[ev], batch.v[ev]
        # 2. threshold ladders
        for t in self.threshold.process(e_idx, e_ts, e_v, ordered=True):
            out.warnings.append(self.threshold.to_event(t, now_ms))
        # 3. rainfall over sliding windows (any window met); each stage skips sensors without its rules
        for r in self.rain.process(e_idx, e_ts, e_v, ordered=True):
            out.warnings.append(self.rain.to_event(r, now_ms))
        # 4. rate of change over a window, and 5. trend forecast (time left to the next rung)
        for t in self.rate.process(e_idx, e_ts, e_v, ordered=True):
            out.warnings.append(self.rate.to_event(t, now_ms))
        for t in self.trend.process(e_idx, e_ts, e_v, ordered=True):
            out.warnings.append(self.trend.to_event(t, now_ms))
        out.warnings.sort(key=lambda e: (e.ts, e.subject, e.rule))
        # 6. site rules (voting, GB 39496 aggregation, composites) over the level changes above
        if self.site_rules:
            changes = [e for e in out.warnings if e.rule != FAULT_RULE]
            site_events = self.site_rules.process(changes, now_ms)
            if site_events:
                out.warnings.extend(site_events)
                out.warnings.sort(key=lambda e: (e.ts, e.subject, e.rule))
        return out

    def tick(self, now_ms: int, sites: Iterable[str] | None = None) -> Output:
        """Clock-driven checks (offline: no reading for k x the period), for ``sites`` (default all)."""
        quality = self._quality(now_ms)
        rows = None if sites is None else np.concatenate(
            [self.quality_table.sensors_of_site.get(s, np.empty(0, np.int64)) for s in sites] or
            [np.empty(0, np.int64)])
        if self.maintenance:  # no offline while a window is open; silence counts from its end
            for row, seen in self.maintenance.open_at(now_ms, self.quality_table.offline_ms).items():
                quality.state.last_seen_ms[row] = max(int(quality.state.last_seen_ms[row]), seen)
        health = quality.tick(now_ms, rows)
        out = Output(warnings=fault_warnings(health, self.config), health=health)
        if self.reorder:  # readings that waited their allowed lateness by this clock
            due = self.reorder.release_due(now_ms)
            released = self._released(due, now_ms)
            out.warnings += released.warnings
            out.health += released.health
            out.released = sorted({self._site_of[i] for i in due[0].tolist()})
        return out

    @property
    def stale(self) -> int:
        """Readings ignored because they were not newer than the sensor's last one."""
        return (self.threshold.ignored_stale + self.rain.ignored_stale + self.rate.ignored_stale
                + self.trend.ignored_stale
                + (self.quality.ignored_stale if self.quality else 0))

    # -- state ----------------------------------------------------------------------------------
    def export_site(self, site: str) -> dict[str, Any]:
        rows = self.thresholds.rows_of_site.get(site, np.empty(0, dtype=np.int64))
        out: dict[str, Any] = {
            "threshold": {self.thresholds.key(r): v for r, v in self.threshold.state.export_rows(rows).items()}}
        out["rain"] = self.rain.export_site(site)
        out["rate"] = self.rate.export_site(site)
        out["trend"] = self.trend.export_site(site)
        if self.quality is not None:
            out["quality"] = self.quality.export_site(site)
        if site in self.site_rules.sites:
            out["site"] = self.site_rules.export_site(site)
        names = {i: sensor for sensor, i in self._by_site.get(site, {}).items()}
        if self.maintenance:
            out["maintenance"] = self.maintenance.export_site(site, names)
        if self.reorder:
            out["reorder"] = self.reorder.export_rows(np.fromiter(names, np.int64, len(names)), names)
        return out

    def import_site(self, site: str, saved: dict[str, Any]) -> None:
        """Replace the site's state with ``saved`` (empty: the site starts fresh)."""
        rows = self.thresholds.rows_of_site.get(site, np.empty(0, dtype=np.int64))
        self.threshold.state.reset_rows(rows)
        data = saved.get("threshold", {} if {"quality", "rain", "rate", "trend", "site", "maintenance", "reorder"} & set(saved) else saved)  # older state: the dict itself
        for r in rows:
            key = self.thresholds.key(int(r))
            if key in data:
                self.threshold.state.import_row(int(r), data[key])
        self.rain.import_site(site, saved.get("rain", {}))
        self.rate.import_site(site, saved.get("rate", {}))
        self.trend.import_site(site, saved.get("trend", {}))
        if self.quality is not None:
            self.quality.import_site(site, saved.get("quality", {}))
        self.site_rules.import_site(site, saved.get("site", {}))
        if self.maintenance:
            self.maintenance.import_site(site, saved.get("maintenance", []), self.thresholds.sensor_index)
        if self.reorder:
            index = self._by_site.get(site, {})
            self.reorder.import_rows(np.fromiter(index.values(), np.int64, len(index)), saved.get("reorder", {}), index)
