"""What every rule stage shares: how rules become rows, row names, and the order in which a
micro-batch is evaluated.

A stage compiles its rules into *rows* (one per sensor and rule): a ladder as signed rungs
(:func:`ladder_rungs`), the sensor's offline limit as the longest gap a duration may span
(:func:`offline_ms`). Its compiled loop (:mod:`rules.kernels`) walks a micro-batch once, in
arrival order, and needs each sensor's readings in timestamp order: the engine's late check
guarantees that; for a stage called on readings in any order, :func:`in_ts_order` puts them in
that order (:func:`by_sensor_time`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from config.models import LEVELS, Sensor
from formats.warning import WarningEvent, episode_id, event_kind
from rules.kernels import N_RANKS

__all__ = ["RowNames", "by_sensor_time", "gap_limits", "in_ts_order", "ladder_rungs", "offline_ms", "zeros"]


def zeros(shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
    """A state array of zeros whose memory is written now. ``np.zeros`` maps its pages lazily, so
    the first batch would pay the page faults (measured: ~40 ms for the rain bins of 100,000
    sensors in the benchmark's first batch); a worker pays them at start instead."""
    return np.full(shape, 0, dtype=dtype)


def gap_limits(max_gap_ms: np.ndarray | None, n: int) -> np.ndarray:
    """A table's per-row gap limit for the compiled loops: ``max_gap_ms``, or no limit (int64 max)."""
    return max_gap_ms if max_gap_ms is not None else np.full(n, np.iinfo(np.int64).max)


def ladder_rungs(direction: str, ladder: Iterable[Any]) -> tuple[float, np.ndarray, np.ndarray]:
    """A rule's ladder as (sign, rungs, raw rungs), column k for level rank k + 1. A "low" rule's
    rungs are negated (sign -1) so that every loop asks ``sign * value >= rung``; a level the
    ladder lacks is +inf in the rungs (never reached) and NaN in the raw ones."""
    sign = 1.0 if direction == "high" else -1.0
    rungs = np.full(N_RANKS, np.inf)
    raw = np.full(N_RANKS, np.nan)
    for step in ladder:
        rank = LEVELS.index(step.level)
        rungs[rank - 1] = sign * step.value
        raw[rank - 1] = step.value
    return sign, rungs, raw


def offline_ms(sensor: Sensor) -> int:
    """The sensor's offline limit (``offline_after_periods`` periods), ms: a longer gap between its
    readings restarts every minimum duration, which so never spans a data gap."""
    return int(round(sensor.period_s * sensor.quality.offline_after_periods * 1000))


def in_ts_order(sensor_idx: Any, ts: Any, value: Any, ordered: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A micro-batch as the compiled loops take it: int64 sensor index, int64 epoch ms, float64
    value, each sensor's readings in ts order (``ordered``: the caller guarantees they are)."""
    idx = np.asarray(sensor_idx, dtype=np.int64)
    ts = np.asarray(ts, dtype=np.int64)
    val = np.asarray(value, dtype=np.float64)
    if not ordered and (order := by_sensor_time(idx, ts)) is not None:
        return idx[order], ts[order], val[order]
    return idx, ts, val


def by_sensor_time(sensor: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """The order (by sensor, then ts, then arrival) to evaluate readings in, or None when every
    sensor's readings already come in timestamp order (checked cheaply: all timestamps ordered)."""
    if len(ts) < 2 or bool(np.all(ts[1:] >= ts[:-1])):
        return None
    return np.lexsort((ts, sensor))


class RowNames:
    """For compiled tables with ``site``, ``sensor`` and ``rule`` lists indexed by row."""

    site: list[str]
    sensor: list[str]
    rule: list[str]
    unit: list[str]

    def subject(self, row: int) -> str:
        return f"{self.site[row]}/{self.sensor[row]}"

    def key(self, row: int) -> str:
        """The row's name in persisted state: ``sensor|rule`` (the site is the table key)."""
        return f"{self.sensor[row]}|{self.rule[row]}"

    def event(self, row: int, *, previous: int, level: int, ts: int, episode_ts: int, emitted_at: int,
              value: float, threshold: float | None, detail: dict[str, Any]) -> WarningEvent:
        """The warning event of one level change of ``row`` (levels as ranks 0..4)."""
        subject = self.subject(row)
        return WarningEvent(
            episode=episode_id(subject, self.rule[row], episode_ts), site=self.site[row], subject=subject,
            rule=self.rule[row], kind=event_kind(previous, level), level=LEVELS[level],
            previous=LEVELS[previous], ts=ts, emitted_at=emitted_at, value=value, threshold=threshold,
            unit=self.unit[row], detail=detail,
        )
