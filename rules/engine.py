"""The rule engine: every rule kind over one columnar micro-batch. Pure (no faust, kafka, MQTT).

Stages: data quality (out of range, stuck, spike, offline by the clock: quarantine, health
events, equipment-fault warnings), then the threshold ladders and the rainfall windows.

The same engine runs in the stream (``rules.worker``, a thin faust shell) and offline
(``hazwatch replay``), so a replay of last season's readings gives exactly the warnings the
stream gave. Time is event time: rules use reading timestamps; ``now_ms`` is only stamped on
events as ``emitted_at``.

Input policy, per reading (``Batch``):

- quality code != 0: the device says the reading is bad; it is not evaluated;
- unknown (site, sensor): rejected with a reason (ingest should have caught it);
- not newer than the sensor's last evaluated reading: a duplicate or a late reading; ignored
  (``stats.stale``) -- state updates are idempotent, so Kafka redelivery changes nothing.

State lives in preallocated arrays indexed by dense row numbers; ``export_site`` and
``import_site`` move one site's state in and out as plain JSON-able data (the worker keeps it in a
changelog-backed faust table keyed by site id).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.models import Config
from rules.events import WarningEvent
from rules.rain import RainEngine, RainTable
from rules.quality import QualityEngine, QualityTable, fault_warnings
from rules.threshold import ThresholdEngine, ThresholdTable

__all__ = ["Batch", "Engine", "EngineStats", "Output"]


@dataclass
class Batch:
    """Columnar readings: one entry per reading, any number of sites."""

    site: Sequence[str]
    sensor: Sequence[str]
    ts: np.ndarray  # int64 epoch ms
    v: np.ndarray  # float64
    q: np.ndarray  # int64 quality, 0 = good

    @classmethod
    def from_messages(cls, messages: Iterable[dict[str, Any]]) -> Batch:
        """From ``hazwatch.readings`` values: ``{"site", "sensor": [...], "ts": [...], "v": [...], "q": [...]}``."""
        site: list[str] = []
        sensor: list[str] = []
        ts: list[int] = []
        v: list[float] = []
        q: list[int] = []
        for m in messages:
            n = len(m["ts"])
            if not (len(m["sensor"]) == len(m["v"]) == len(m["q"]) == n):
                raise ValueError("readings message columns differ in length")
            site.extend([m["site"]] * n)
            sensor.extend(m["sensor"])
            ts.extend(m["ts"])
            v.extend(m["v"])
            q.extend(m["q"])
        return cls(site, sensor, np.asarray(ts, dtype=np.int64), np.asarray(v, dtype=np.float64),
                   np.asarray(q, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class EngineStats:
    readings: int = 0
    evaluated: int = 0
    bad_quality: int = 0
    unknown: int = 0
    quarantined: int = 0


@dataclass
class Output:
    warnings: list[WarningEvent] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)
    """(index in the batch, reason) of readings that cannot be evaluated."""


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
        self.stats = EngineStats()
        self._index = self.thresholds.sensor_index

    def _quality(self, now_ms: int) -> QualityEngine:
        if self.quality is None:
            self.quality = QualityEngine(self.quality_table, started_ms=now_ms)
        return self.quality

    # -- evaluation -----------------------------------------------------------------------------
    def process(self, batch: Batch, now_ms: int) -> Output:
        out = Output()
        n = len(batch)
        self.stats.readings += n
        idx = np.fromiter((self._index.get(k, -1) for k in zip(batch.site, batch.sensor)), dtype=np.int64, count=n)
        unknown = np.flatnonzero(idx < 0)
        for i in unknown:
            out.rejects.append((int(i), f"unknown sensor {batch.sensor[i]!r} at site {batch.site[i]!r}"))
        good = (idx >= 0) & (batch.q == 0)
        self.stats.unknown += len(unknown)
        self.stats.bad_quality += int(((idx >= 0) & (batch.q != 0)).sum())
        # 1. data quality: faulty readings are quarantined, faults become health events and
        #    equipment-fault warnings for the officers
        gi = np.flatnonzero(good)
        quarantined, health = self._quality(now_ms).process(idx[gi], batch.ts[gi], batch.v[gi], now_ms)
        out.health.extend(health)
        out.warnings.extend(fault_warnings(health, self.config))
        ev = gi[~quarantined]
        self.stats.quarantined += int(quarantined.sum())
        self.stats.evaluated += len(ev)
        # 2. threshold ladders
        for t in self.threshold.process(idx[ev], batch.ts[ev], batch.v[ev]):
            out.warnings.append(self.threshold.to_event(t, now_ms))
        # 3. rainfall over sliding windows (any window met)
        for r in self.rain.process(idx[ev], batch.ts[ev], batch.v[ev]):
            out.warnings.append(self.rain.to_event(r, now_ms))
        out.warnings.sort(key=lambda e: (e.ts, e.subject, e.rule))
        return out

    def tick(self, now_ms: int, sites: Iterable[str] | None = None) -> Output:
        """Clock-driven checks (offline: no reading for k x the period), for ``sites`` (default all)."""
        quality = self._quality(now_ms)
        rows = None if sites is None else np.concatenate(
            [self.quality_table.sensors_of_site.get(s, np.empty(0, np.int64)) for s in sites] or
            [np.empty(0, np.int64)])
        health = quality.tick(now_ms, rows)
        return Output(warnings=fault_warnings(health, self.config), health=health)

    @property
    def stale(self) -> int:
        """Readings ignored because they were not newer than the sensor's last one."""
        return (self.threshold.ignored_stale + self.rain.ignored_stale
                + (self.quality.ignored_stale if self.quality else 0))

    # -- state ----------------------------------------------------------------------------------
    def export_site(self, site: str) -> dict[str, Any]:
        rows = self.thresholds.rows_of_site.get(site, np.empty(0, dtype=np.int64))
        out: dict[str, Any] = {
            "threshold": {self.thresholds.key(r): v for r, v in self.threshold.state.export_rows(rows).items()}}
        out["rain"] = self.rain.export_site(site)
        if self.quality is not None:
            out["quality"] = self.quality.export_site(site)
        return out

    def import_site(self, site: str, saved: dict[str, Any]) -> None:
        """Replace the site's state with ``saved`` (empty: the site starts fresh)."""
        rows = self.thresholds.rows_of_site.get(site, np.empty(0, dtype=np.int64))
        self.threshold.state.reset_rows(rows)
        data = saved.get("threshold", {} if {"quality", "rain"} & set(saved) else saved)  # older state: the dict itself
        for r in rows:
            key = self.thresholds.key(int(r))
            if key in data:
                self.threshold.state.import_row(int(r), data[key])
        self.rain.import_site(site, saved.get("rain", {}))
        if self.quality is not None:
            self.quality.import_site(site, saved.get("quality", {}))
