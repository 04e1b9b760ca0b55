"""The benchmark's baseline: the rule engine's five stages as a plain per-reading Python loop.

This is what one would write without the columnar engine: an object per sensor and rule holding
its state in ints, lists and deques, one Python iteration per reading. It implements exactly the
semantics of :mod:`rules.engine` -- the input policy and the stages in order -- and dresses level
changes and health events as the engine does, so ``hazwatch bench rules`` compares like with like
and ``tests/hazwatch/test_bench.py`` checks that both give the same events:

- **input policy**: unknown (site, sensor) rejected with a reason; quality code != 0 not evaluated;
  *late* (older than the sensor's newest reading that arrived before it) rejected with a reason;
  a duplicate of the newest one ignored (counted as stale, not as quarantined, as in the engine);
- **data quality** (:mod:`rules.quality`, :class:`QualityCheck` here: it is the gate before the
  rules): out of range, stuck, spike (Hampel test), offline by the clock
  (:meth:`BaselineEngine.tick`); a sensor in fault is quarantined; health events, and
  equipment-fault warnings from them (:func:`rules.quality.fault_warnings`, reused: it dresses
  events, it evaluates nothing);
- **threshold** ladders (:mod:`rules.threshold`), **rain** windows (:mod:`rules.rain`), **rate** of
  change (:mod:`rules.rate`) and **trend** forecasts (:mod:`rules.trend`), in
  :mod:`hazwatch.bench_baseline_stages`.

Not covered (:data:`BASELINE_STAGES` names what is): the engine's maintenance windows
(``rules.maintenance``), the reorder buffer of sensors with ``allowed_lateness_s > 0``
(``rules.lateness``) and the site-level rules after the five stages (voting, aggregation,
composites; ``rules.site``). With those in a configuration the engine does work this baseline does
not, and gives events it does not; the test compares the two on configurations without them.

It is deliberately written the plain way (readable, not micro-optimised): it is the yardstick for
"what vectorising buys", not a competitor.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from config.models import LEVELS, Config, Sensor, ThresholdRule
from config.rules import RAIN_WINDOWS_H, RainRule, RateRule, TrendRule
from formats.warning import WarningEvent
from hazwatch.bench_baseline_stages import Ladder, RainGauge, RateLadder, TrendForecast, warning
from rules.batch import Batch
from rules.quality import CHECKS, fault_warnings

__all__ = ["BASELINE_STAGES", "BaselineEngine", "BaselineOutput", "BaselineSensor", "BaselineStats",
           "QualityCheck"]

#: What the baseline implements, in the engine's order (not: maintenance windows, allowed
#: lateness, site rules).
BASELINE_STAGES: tuple[str, ...] = ("input_policy", "quality", "threshold", "rain", "rate", "trend")


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


# -- data quality -------------------------------------------------------------------------------
class QualityCheck:
    """One sensor's data-quality checks (:mod:`rules.quality`): out of range, stuck, spike, offline."""

    def __init__(self, site: str, sensor: Sensor) -> None:
        self.site, self.sensor = site, sensor.id
        spec = sensor.quality
        self.lo, self.hi = sensor.range if sensor.range is not None else (-math.inf, math.inf)
        self.offline_ms = round(spec.offline_after_periods * sensor.period_s * 1000)
        self.stuck_samples = spec.stuck_samples or 0
        self.spike_mad = spec.spike_mad  # None: no spike test
        self.mad_floor = 0.01 * (self.hi - self.lo) if sensor.range is not None else 0.0
        self.faults: set[str] = set()  # checks in fault
        self.since: dict[str, int] = {}  # check -> ts it entered fault
        self.episode_ts = -1
        self.run = 0  # consecutive equal values
        self.last_ts = -1
        self.last_seen_ms = -1  # wall clock of the last reading; the engine's start before one
        self.last_v = math.nan
        self.outlier = 0  # side of the previous reading's outlier
        self.window: deque[float] = deque(maxlen=spec.spike_window)
        self.stale = 0

    def check(self, ts: int, v: float, now_ms: int) -> tuple[bool, list[dict[str, Any]]]:
        """Judge one reading: (quarantined, health events)."""
        if ts <= self.last_ts:  # judged when it first came
            self.stale += 1
            return True, []
        self.last_ts, self.last_seen_ms = ts, now_ms
        before = set(self.faults)
        after = before - {"offline"}  # any reading ends offline
        bad = not math.isfinite(v) or v < self.lo or v > self.hi
        if bad:
            after.add("out_of_range")
        else:
            after.discard("out_of_range")
        self.run = min(self.run + 1, max(self.stuck_samples, 1)) if v == self.last_v else 1
        self.last_v = v
        if self.stuck_samples and self.run >= self.stuck_samples:
            after.add("stuck")
        else:
            after.discard("stuck")
        spike, stats = False, (math.nan, math.nan, math.nan)
        if self.spike_mad is not None and not bad:
            spike, stats = self._spike(v, self.spike_mad)
        events = self.transition(before, after, ts, now_ms, v) if after != before else []
        if spike:
            events.append(self._event("spike", "spike", ts, now_ms, v,
                                      {"median": _num(stats[0]), "mad": _num(stats[1]), "limit": _num(stats[2])}))
        self.faults = after
        return bool(after) or spike, events

    def _spike(self, v: float, spike_mad: float) -> tuple[bool, tuple[float, float, float]]:
        """Hampel test against the window of accepted readings; an accepted reading joins it."""
        side, stats = 0, (math.nan, math.nan, math.nan)
        if len(self.window) == self.window.maxlen:  # no test until the window is full
            med = _median(list(self.window))
            mad = _median([abs(x - med) for x in self.window])
            floor = self.mad_floor if self.mad_floor > 0 else 1e-3 * max(1.0, abs(med))
            limit = spike_mad * max(mad, floor)
            if abs(v - med) > limit:
                side = 1 if v > med else -1
            stats = (med, mad, limit)
        spike = side != 0 and side != self.outlier  # an outlier on the same side is a level shift
        self.outlier = side
        if not spike:
            self.window.append(v)
        return spike, stats

    def tick(self, now_ms: int, started_ms: int) -> list[dict[str, Any]]:
        """Offline by the wall clock: no reading for more than the offline interval (counted from
        ``started_ms`` at the earliest)."""
        if "offline" in self.faults or now_ms - max(self.last_seen_ms, started_ms) <= self.offline_ms:
            return []
        since = self.last_seen_ms + self.offline_ms  # when the silence passed the limit
        events = self.transition(self.faults, self.faults | {"offline"}, since, now_ms, None)
        self.faults = self.faults | {"offline"}
        return events

    def transition(self, before: set[str], after: set[str], ts: int, now: int,
                   value: float | None) -> list[dict[str, Any]]:
        """Health events for the checks that changed: new faults first, then cleared ones."""
        if not before and after:
            self.episode_ts = ts
        active, out = set(before), []
        for entering in (True, False):  # the episode never looks healthy in between
            for check in CHECKS:
                if (check in after) == (check in before) or (check in after) != entering:
                    continue
                active ^= {check}
                detail: dict[str, Any] = {"active": [c for c in CHECKS if c in active],
                                          "episode_ts": self.episode_ts}
                if entering:
                    self.since[check] = ts
                else:
                    detail["since"] = self.since.pop(check)
                if check == "offline" and entering:
                    detail.update(offline_ms=self.offline_ms, last_seen_ms=self.last_seen_ms,
                                  last_ts=None if self.last_ts < 0 else self.last_ts,
                                  last_value=_num(self.last_v))
                elif check == "stuck":
                    detail["samples"] = self.stuck_samples
                elif check == "out_of_range":
                    detail["range"] = [_num(self.lo), _num(self.hi)]
                out.append(self._event(check, "fault" if entering else "ok", ts, now, value, detail))
        if not after:
            self.episode_ts = -1
        return out

    def _event(self, check: str, state: str, ts: int, now: int, value: float | None,
               detail: dict[str, Any]) -> dict[str, Any]:
        return {"site": self.site, "subject": f"{self.site}/{self.sensor}", "sensor": self.sensor,
                "check": check, "state": state, "ts": ts, "detected_at": now,
                "value": None if value is None else _num(value), "detail": detail}


def _median(values: list[float]) -> float:
    s = sorted(values)
    return 0.5 * (s[(len(s) - 1) // 2] + s[len(s) // 2])



@dataclass
class BaselineSensor:
    """One sensor: its data-quality checks and every rule on it, each with its own state."""

    site: str
    id: str
    index: int
    """Dense index in configuration order: health events of one ts are ordered by it."""
    unit: str
    quantity: str
    quality: QualityCheck
    thresholds: list[tuple[ThresholdRule, Ladder]]
    rain: tuple[RainRule, RainGauge] | None
    rates: list[tuple[RateRule, RateLadder]]
    trend: tuple[TrendRule, TrendForecast] | None
    """Only on a sensor with a threshold rule: the forecast targets its first one's rungs."""

    @classmethod
    def from_config(cls, site: str, sensor: Sensor, index: int) -> BaselineSensor:
        max_gap_ms = round(sensor.period_s * sensor.quality.offline_after_periods * 1000)
        thresholds = [(r, Ladder(r.direction, r.ladder, r.deadband, r.min_duration_s, max_gap_ms))
                      for r in sensor.thresholds]
        trend = None
        if sensor.trend is not None and thresholds:
            trend = (sensor.trend, TrendForecast(sensor.trend, thresholds[0][1], max_gap_ms))
        return cls(site=site, id=sensor.id, index=index, unit=sensor.unit, quantity=sensor.quantity,
                   quality=QualityCheck(site, sensor), thresholds=thresholds,
                   rain=(sensor.rain, RainGauge(sensor.rain)) if sensor.rain is not None else None,
                   rates=[(r, RateLadder(r, max_gap_ms)) for r in sensor.rate], trend=trend)

    def stale(self) -> int:
        stages: list[Any] = [ladder for _, ladder in self.thresholds] + [r for _, r in self.rates]
        stages += [x[1] for x in (self.rain, self.trend) if x is not None]
        return self.quality.stale + sum(s.stale for s in stages)


@dataclass
class BaselineStats:
    """As :class:`rules.engine.EngineStats`."""

    readings: int = 0
    evaluated: int = 0
    bad_quality: int = 0
    unknown: int = 0
    quarantined: int = 0
    late: int = 0


@dataclass
class BaselineOutput:
    """As :class:`rules.engine.Output`."""

    warnings: list[WarningEvent] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)


class BaselineEngine:
    """Per-reading evaluation of every rule of ``config``, with :class:`rules.engine.Engine`'s
    interface: ``process(batch, now_ms)`` and ``tick(now_ms)``."""

    def __init__(self, config: Config, *, started_ms: int | None = None) -> None:
        self.config = config
        self.sensors: dict[tuple[str, str], BaselineSensor] = {}
        for site in config.sites:
            for sensor in site.sensors:
                self.sensors[(site.id, sensor.id)] = BaselineSensor.from_config(site.id, sensor, len(self.sensors))
        self.stats = BaselineStats()
        self.started_ms: int | None = None
        if started_ms is not None:
            self._start(started_ms)

    def _start(self, now_ms: int) -> None:
        """As the engine: sensors never seen count their silence from when it started."""
        if self.started_ms is None:
            self.started_ms = now_ms
            for sensor in self.sensors.values():
                sensor.quality.last_seen_ms = now_ms

    @property
    def stale(self) -> int:
        """As :attr:`rules.engine.Engine.stale`."""
        return sum(s.stale() for s in self.sensors.values())

    def process(self, batch: Batch, now_ms: int) -> BaselineOutput:
        """Evaluate readings one at a time, in arrival order."""
        self._start(now_ms)
        out = BaselineOutput()
        late: list[tuple[int, str]] = []
        health: list[tuple[int, int, dict[str, Any]]] = []  # (ts, sensor index, event)
        changes: list[WarningEvent] = []
        readings = zip(batch.site, batch.sensor, batch.ts.tolist(), batch.v.tolist(), batch.q.tolist())
        for i, (site, sensor_id, ts, value, q) in enumerate(readings):
            self.stats.readings += 1
            sensor = self.sensors.get((site, sensor_id))
            if sensor is None:
                self.stats.unknown += 1
                out.rejects.append((i, f"unknown sensor {sensor_id!r} at site {site!r}"))
                continue
            if q != 0:
                self.stats.bad_quality += 1
                continue
            newest = sensor.quality.last_ts  # the newest reading of the sensor so far
            if ts < newest:
                self.stats.late += 1
                why = (f"late reading: ts {ts} is {(newest - ts) / 1000:g} s older than an earlier reading of "
                       f"{site}/{sensor_id} (or redelivered after a restart; it was not evaluated now)")
                late.append((i, why))
                continue
            stale = sensor.quality.stale
            quarantined, events = sensor.quality.check(ts, value, now_ms)
            health += [(ts, sensor.index, e) for e in events]
            if quarantined:
                self.stats.quarantined += sensor.quality.stale == stale  # a duplicate is not in fault
                continue
            self.stats.evaluated += 1
            changes += self._evaluate(sensor, ts, value, now_ms)
        out.rejects += late
        health.sort(key=lambda h: (h[0], h[1]))  # stable: one reading's events keep their order
        out.health = [e for _, _, e in health]
        out.warnings = fault_warnings(out.health, self.config) + changes
        out.warnings.sort(key=lambda e: (e.ts, e.subject, e.rule))
        return out

    def _evaluate(self, sensor: BaselineSensor, ts: int, value: float, now_ms: int) -> list[WarningEvent]:
        """One reading the quality checks let through, against every rule of its sensor."""
        out: list[WarningEvent] = []
        names = (sensor.site, sensor.id)
        for rule, ladder in sensor.thresholds:
            if (c := ladder.evaluate(ts, value)) is not None:
                out.append(warning(
                    *names, rule.rule, sensor.unit, previous=c.previous, level=c.level, ts=ts,
                    episode_ts=c.episode_ts, emitted_at=now_ms, value=c.value, threshold=ladder.threshold(c),
                    detail={"peak": LEVELS[c.peak], "quantity": sensor.quantity, "direction": rule.direction,
                            "raised_ts": c.episode_ts}))
        if sensor.rain is not None and (r := sensor.rain[1].evaluate(ts, value)) is not None:
            c, window, sums = r
            out.append(warning(
                *names, sensor.rain[0].rule, sensor.unit, previous=c.previous, level=c.level, ts=ts,
                episode_ts=c.episode_ts, emitted_at=now_ms, value=c.value,
                threshold=sensor.rain[1].rungs[window][(c.level or c.previous) - 1],
                detail={"window_h": RAIN_WINDOWS_H[window],
                        "sums": {f"{h}h": s / 100 for h, s in zip(RAIN_WINDOWS_H, sums)},
                        "peak": LEVELS[c.peak], "raised_ts": c.episode_ts, "quantity": sensor.quantity}))
        for rate_rule, rate in sensor.rates:
            if (c := rate.evaluate(ts, value)) is not None:
                out.append(warning(
                    *names, rate_rule.rule, f"{sensor.unit}/{rate_rule.per_unit}", previous=c.previous, level=c.level,
                    ts=ts, episode_ts=c.episode_ts, emitted_at=now_ms, value=c.value,
                    threshold=rate.ladder.threshold(c),
                    detail={"window_s": rate_rule.window_s, "per_s": float(rate_rule.per_s), "peak": LEVELS[c.peak],
                            "raised_ts": c.episode_ts, "quantity": sensor.quantity,
                            "direction": rate_rule.direction}))
        if sensor.trend is not None and (f := sensor.trend[1].evaluate(ts, value)) is not None:
            target_value = sensor.trend[1].raw[f.target - 1] if f.target else None
            out.append(warning(
                *names, sensor.trend[0].rule, sensor.unit, previous=f.previous, level=f.level, ts=ts,
                episode_ts=f.episode_ts, emitted_at=now_ms, value=value, threshold=target_value,
                detail={"eta_s": f.eta_s if math.isfinite(f.eta_s) else None,
                        "target_level": LEVELS[f.target] if f.target else None, "target_value": target_value,
                        "slope_per_s": f.slope_per_s, "points": f.points,
                        "horizon_s": sensor.trend[1].horizon_s, "raised_ts": f.episode_ts,
                        "quantity": sensor.quantity}))
        return out

    def tick(self, now_ms: int, sites: Iterable[str] | None = None) -> BaselineOutput:
        """Offline by the wall clock, for ``sites`` (default all), as :meth:`rules.engine.Engine.tick`."""
        self._start(now_ms)
        if sites is None:
            sensors = list(self.sensors.values())
        else:
            sensors = [x for s in sites for x in self.sensors.values() if x.site == s]
        health = [e for s in sensors for e in s.quality.tick(now_ms, self.started_ms or now_ms)]
        return BaselineOutput(warnings=fault_warnings(health, self.config), health=health)
