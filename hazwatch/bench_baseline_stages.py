"""The benchmark baseline's rule stages after data quality, one reading at a time: plain Python.

One object per (sensor, rule) holds its parameters and its state; ``evaluate(ts, value)`` judges
one reading and returns the level change it causes, or None. Each class mirrors one engine stage
(the module named in its docstring), state variable for state variable, so that
:class:`hazwatch.bench_baseline.BaselineEngine` gives the engine's events exactly; see there for
why this exists. Parameters are compiled from the configuration models here, the plain way.

The one non-obvious piece is :func:`numpy_sum`: the trend fit sums in numpy's order, so that its
slope and ETA are bit-identical to the engine's (a left-to-right sum differs in the last bits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from config.models import LEVELS
from config.rules import RAIN_WINDOWS_H, RainRule, RateRule, TrendRule
from formats.warning import WarningEvent, episode_id, event_kind

__all__ = ["Forecast", "Ladder", "LevelChange", "RainGauge", "RateLadder", "Ring", "TrendForecast", "numpy_sum",
           "warning"]

N_RANKS = len(LEVELS) - 1  # blue..red
BIN_MS = 300_000  # rain bins: 5 min, a ring of 288 = 24 h, as rules.rain
N_BINS = 288
WINDOW_BINS = [h * 3_600_000 // BIN_MS for h in RAIN_WINDOWS_H]
MAX_MM = 1e9  # rain readings are clipped to [0, 1e9] mm, and one bin to the int32 range, as rules.rain
BIN_CAP = 2**31 - 1


def warning(site: str, sensor: str, rule: str, unit: str, *, previous: int, level: int, ts: int,
            episode_ts: int, emitted_at: int, value: float, threshold: float | None,
            detail: dict[str, Any]) -> WarningEvent:
    """A level change dressed as the engine dresses it (:meth:`rules.rows.RowNames.event`)."""
    subject = f"{site}/{sensor}"
    return WarningEvent(
        episode=episode_id(subject, rule, episode_ts), site=site, subject=subject, rule=rule,
        kind=event_kind(previous, level), level=LEVELS[level], previous=LEVELS[previous], ts=ts,
        emitted_at=emitted_at, value=value, threshold=threshold, unit=unit, detail=detail,
    )


# -- level ladders: threshold rules, and the rate rules' ladders ----------------------------------
@dataclass(frozen=True, slots=True)
class LevelChange:
    ts: int
    value: float
    previous: int
    level: int
    episode_ts: int
    peak: int


class Ladder:
    """A level ladder with deadband and minimum duration (:mod:`rules.threshold`)."""

    def __init__(self, direction: str, ladder: list[Any], deadband: float, min_duration_s: float,
                 max_gap_ms: int | None) -> None:
        self.sign = 1.0 if direction == "high" else -1.0
        self.rungs: list[float | None] = [None] * N_RANKS  # signed: "higher is worse"
        self.raw: list[float | None] = [None] * N_RANKS  # in the rule's unit
        for step in ladder:
            self.rungs[LEVELS.index(step.level) - 1] = self.sign * step.value
            self.raw[LEVELS.index(step.level) - 1] = float(step.value)
        self.deadband = deadband
        self.min_duration_ms = round(min_duration_s * 1000)
        self.max_gap_ms = max_gap_ms  # a longer gap between readings restarts every run
        self.level = 0
        self.since = [-1] * N_RANKS  # first ts of the current run where each rung holds
        self.last_ts = -1
        self.episode_ts = -1
        self.peak = 0
        self.stale = 0

    def evaluate(self, ts: int, value: float) -> LevelChange | None:
        if ts <= self.last_ts:  # a duplicate or a late reading changes nothing
            self.stale += 1
            return None
        if self.max_gap_ms is not None and self.last_ts >= 0 and ts - self.last_ts > self.max_gap_ms:
            self.since = [-1] * N_RANKS  # no duration spans a data gap
        self.last_ts = ts
        x = value * self.sign
        new_level = 0
        for rank in range(1, N_RANKS + 1):
            rung = self.rungs[rank - 1]
            if rung is None:
                self.since[rank - 1] = -1
                continue
            tol = 1e-9 * max(1.0, abs(rung))  # "exactly at the threshold" survives float rounding
            holds = x >= rung - self.deadband - tol if self.level >= rank else x >= rung - tol
            if not holds:
                self.since[rank - 1] = -1
                continue
            if self.since[rank - 1] < 0:
                self.since[rank - 1] = ts
            if self.level >= rank or ts - self.since[rank - 1] >= self.min_duration_ms:
                new_level = rank
        if new_level == self.level:
            return None
        if self.level == 0:
            self.episode_ts, self.peak = ts, 0
        self.peak = max(self.peak, new_level)
        change = LevelChange(ts, value, self.level, new_level, self.episode_ts, self.peak)
        self.level = new_level
        if new_level == 0:
            self.episode_ts, self.peak = -1, 0
        return change

    def threshold(self, change: LevelChange) -> float | None:
        """The rung of the level entered (or, on a clear, of the level left)."""
        return self.raw[(change.level or change.previous) - 1]


# -- rainfall windows ------------------------------------------------------------------------------
class RainGauge:
    """Sliding-window rainfall sums, any window met (:mod:`rules.rain`). Amounts in 0.01 mm (ints)."""

    def __init__(self, rule: RainRule) -> None:
        self.counter_input = rule.input == "counter"
        self.rungs: list[list[float | None]] = [[None] * N_RANKS for _ in RAIN_WINDOWS_H]  # mm
        self.rungs_cmm: list[list[int | None]] = [[None] * N_RANKS for _ in RAIN_WINDOWS_H]
        for window in rule.windows:
            w = RAIN_WINDOWS_H.index(window.hours)
            for step in window.ladder:
                self.rungs[w][LEVELS.index(step.level) - 1] = float(step.value)
                self.rungs_cmm[w][LEVELS.index(step.level) - 1] = round(step.value * 100)
        self.deadband_cmm = round(rule.deadband * 100)
        self.bins = [0] * N_BINS  # 5-min bins, slot = bin number % 288
        self.sums = [0] * len(RAIN_WINDOWS_H)  # the window sums ending at the newest bin
        self.last_ts = -1
        self.counter: int | None = None  # last counter value; None before a baseline
        self.level = 0
        self.episode_ts = -1
        self.peak = 0
        self.stale = 0

    def evaluate(self, ts: int, mm: float) -> tuple[LevelChange, int, list[int]] | None:
        """A level change with its deciding window and the window sums, or None."""
        if ts <= self.last_ts:
            self.stale += 1
            return None
        cmm = round(min(max(mm, 0.0), MAX_MM) * 100.0)  # a negative increment counts as 0
        head = ts // BIN_MS
        advance = head - self.last_ts // BIN_MS if self.last_ts >= 0 else N_BINS
        rain = cmm
        if self.counter_input:
            # no baseline yet, or the ring emptied by a >= 24 h gap: this reading is the baseline
            base = self.counter if self.counter is not None and advance < N_BINS else cmm
            rain = cmm - base if cmm >= base else cmm  # a drop is a reset
            self.counter = cmm
        self._advance(head, advance)
        slot = head % N_BINS
        old = self.bins[slot]
        self.bins[slot] = min(old + rain, BIN_CAP)
        self.sums = [s + self.bins[slot] - old for s in self.sums]
        self.last_ts = ts
        holds = [[self._holds(w, rank) for rank in range(1, N_RANKS + 1)] for w in range(len(RAIN_WINDOWS_H))]
        new_level = max((rank for rank in range(1, N_RANKS + 1) if any(h[rank - 1] for h in holds)), default=0)
        if new_level == self.level:
            return None
        old_level = self.level
        if old_level == 0:
            self.episode_ts = ts
        self.peak = max(self.peak if old_level else 0, new_level)
        window = self._deciding_window(holds, new_level, old_level)
        change = LevelChange(ts, self.sums[window] / 100, old_level, new_level, self.episode_ts, self.peak)
        self.level = new_level
        if new_level == 0:
            self.episode_ts, self.peak = -1, 0
        return change, window, list(self.sums)

    def _advance(self, head: int, advance: int) -> None:
        """Turn the ring to bin ``head``: one bin at a time, each window losing its oldest bin."""
        if advance >= N_BINS:
            self.bins = [0] * N_BINS
            self.sums = [0] * len(RAIN_WINDOWS_H)
            return
        for b in range(head - advance + 1, head + 1):
            self.sums = [s - self.bins[(b - n) % N_BINS] for s, n in zip(self.sums, WINDOW_BINS)]
            self.bins[b % N_BINS] = 0  # it held the bin 24 h before

    def _holds(self, w: int, rank: int) -> bool:
        rung = self.rungs_cmm[w][rank - 1]
        if rung is None:
            return False
        return self.sums[w] >= rung - (self.deadband_cmm if self.level >= rank else 0)

    def _deciding_window(self, holds: list[list[bool]], new: int, old: int) -> int:
        """The window holding the new level by the largest sum / rung (on a clear: the closest
        to keeping the old one); the shorter window on ties."""
        rank = new if new else old
        best, best_ratio = 0, -math.inf
        for w in range(len(RAIN_WINDOWS_H)):
            rung = self.rungs_cmm[w][rank - 1]
            if rung is None or (new and not holds[w][new - 1]):
                continue
            ratio = self.sums[w] / max(rung, 1)
            if ratio > best_ratio:
                best, best_ratio = w, ratio
        return best


# -- rate of change and trend forecast: a ring of recent readings -----------------------------------
class Ring:
    """The last ``size`` readings, subsampled to cover a window (``_ring_push`` in :mod:`rules.kernels`): the
    newest reading overwrites the newest slot unless that lies ``spacing_ms`` after the one before."""

    def __init__(self, size: int, spacing_ms: int) -> None:
        self.ts: list[int | None] = [None] * size
        self.v = [0.0] * size
        self.head = 0
        self.spacing_ms = spacing_ms

    def push(self, ts: int, v: float) -> None:
        newest, before = self.ts[self.head], self.ts[self.head - 1]
        if newest is not None and (before is None or newest - before >= self.spacing_ms):
            self.head = (self.head + 1) % len(self.ts)
        self.ts[self.head], self.v[self.head] = ts, v

    def clear(self) -> None:
        """After a data gap: nothing kept (the values stay, unused, as in the engine)."""
        self.ts = [None] * len(self.ts)
        self.head = 0


class RateLadder:
    """A rate-of-change rule (:mod:`rules.rate`): the rate from the oldest kept reading in the
    window, fed to a ladder. As in the engine, a gap between two readings longer than the sensor's
    offline limit (``max_gap_ms``) empties the ring (no rate across a gap), and a gap between two
    rates restarts the ladder's minimum-duration runs."""

    def __init__(self, rule: RateRule, max_gap_ms: int) -> None:
        self.window_ms = round(rule.window_s * 1000)
        self.ring = Ring(32, max(self.window_ms // 30, 1))
        self.min_span_ms = round(rule.min_span_s * 1000)
        self.per_s = float(rule.per_s)
        self.last_ts = -1
        self.max_gap_ms = max_gap_ms
        self.ladder = Ladder(rule.direction, rule.ladder, rule.deadband, rule.min_duration_s, max_gap_ms)
        self.stale = 0

    def evaluate(self, ts: int, value: float) -> LevelChange | None:
        if ts <= self.last_ts:
            self.stale += 1
            return None
        if self.last_ts >= 0 and ts - self.last_ts > self.max_gap_ms:
            self.ring.clear()
        self.last_ts = ts
        self.ring.push(ts, value)
        kept = [(t, v) for t, v in zip(self.ring.ts, self.ring.v) if t is not None and t >= ts - self.window_ms]
        ts_o, v_o = min(kept, key=lambda r: r[0])
        span = ts - ts_o
        if span <= 0 or span < self.min_span_ms:
            return None
        return self.ladder.evaluate(ts, (value - v_o) / (span / 1000.0) * self.per_s)


@dataclass(frozen=True, slots=True)
class Forecast:
    previous: int
    level: int
    episode_ts: int
    eta_s: float
    target: int  # rank of the target rung, 0 when none
    slope_per_s: float
    points: int


class TrendForecast:
    """A trend forecast (:mod:`rules.trend`): least squares over the window, ETA to the next rung
    of the sensor's first threshold rule, raised under ``horizon_s``, cleared at ``clear_factor`` x."""

    def __init__(self, rule: TrendRule, target: Ladder, max_gap_ms: int) -> None:
        self.max_gap_ms = max_gap_ms  # a longer gap empties the ring: no line across it
        self.sign, self.rungs, self.raw = target.sign, target.rungs, target.raw
        self.window_ms = round(rule.window_s * 1000)
        self.ring = Ring(64, max(self.window_ms // 62, 1))
        self.horizon_s = float(rule.horizon_s)
        self.clear_s = rule.clear_factor * rule.horizon_s
        self.min_points = rule.min_points
        self.forecast_level = LEVELS.index(rule.level)
        self.last_ts = -1
        self.level = 0
        self.episode_ts = -1
        self.stale = 0

    def evaluate(self, ts: int, value: float) -> Forecast | None:
        if ts <= self.last_ts:
            self.stale += 1
            return None
        if self.last_ts >= 0 and ts - self.last_ts > self.max_gap_ms:
            self.ring.clear()
        self.last_ts = ts
        self.ring.push(ts, value)
        # the fit, slot by slot (out-of-window slots count as 0, as in the engine's masked sums)
        inside: list[bool] = []
        t: list[float] = []  # seconds before the reading
        d: list[float] = []  # value relative to the reading
        for rt, rv in zip(self.ring.ts, self.ring.v):
            ok = rt is not None and rt >= ts - self.window_ms
            inside.append(ok)
            t.append((rt - ts) / 1000.0 if rt is not None and ok else 0.0)
            d.append(rv - value if ok else 0.0)
        points = sum(inside)
        n = max(points, 1)
        t_mean, d_mean = numpy_sum(t) / n, numpy_sum(d) / n
        tc = [x - t_mean if ok else 0.0 for x, ok in zip(t, inside)]
        dc = [y - d_mean if ok else 0.0 for y, ok in zip(d, inside)]
        sxx = numpy_sum([x * x for x in tc])
        if points < self.min_points or not sxx > 0:  # not evaluated: the forecast stays as it is
            return None
        slope = numpy_sum([x * y for x, y in zip(tc, dc)]) / sxx  # unit / s
        v, s = self.sign * value, self.sign * slope
        target, eta = 0, math.inf
        for rank, rung in enumerate(self.rungs, start=1):
            if rung is not None and rung > v:  # the next rung beyond the value (rungs rise with rank)
                target = rank
                if s > 0:  # the line moves toward it
                    eta = (rung - v) / s
                break
        active = self.level > 0
        now_active = eta < self.clear_s if active else eta < self.horizon_s
        if now_active == active:
            return None
        previous, new = self.level, self.forecast_level if now_active else 0
        if previous == 0:
            self.episode_ts = ts
        forecast = Forecast(previous, new, self.episode_ts, eta, target, slope, points)
        self.level = new
        if new == 0:
            self.episode_ts = -1
        return forecast


def numpy_sum(values: list[float]) -> float:
    """Sum in the order numpy's ``sum`` uses for up to 128 floats (eight interleaved partial sums,
    combined pairwise, then the rest), so that the fit is bit-identical to the engine's."""
    n = len(values)
    if n < 8:
        total = -0.0
        for x in values:
            total += x
        return total
    if n > 128:
        raise ValueError("numpy_sum mirrors numpy's order for at most 128 values")
    r = values[:8]
    i = 8
    while i < n - n % 8:
        for j in range(8):
            r[j] += values[i + j]
        i += 8
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for x in values[i:]:
        total += x
    return total
