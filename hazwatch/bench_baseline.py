"""The benchmark's baseline: the threshold rules as a plain per-reading Python loop.

This is what one would write without the columnar engine: a dict of state per (sensor, rule),
one Python iteration per reading and rung. It implements exactly the semantics of
:mod:`rules.threshold` (ladder, deadband hysteresis, minimum duration, duplicates and late
readings ignored, quality != 0 not evaluated, unknown sensors rejected) and dresses level changes
as the same :class:`~rules.events.WarningEvent` s, so ``hazwatch bench rules`` compares like with
like and ``tests/hazwatch/test_bench.py`` checks that both give the same events.

It is deliberately written the plain way (readable, not micro-optimised): it is the yardstick for
"what vectorising buys", not a competitor. It covers threshold rules only; stages the engine gains
later (rain windows, data quality) make the engine do more work than this baseline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.models import LEVELS, Config
from rules.events import WarningEvent, episode_id, event_kind

__all__ = ["BaselineEngine", "BaselineRule"]

N_RANKS = len(LEVELS) - 1  # blue..red


@dataclass
class BaselineRule:
    """One (site, sensor, rule): its compiled ladder and its mutable state."""

    site: str
    sensor: str
    rule: str
    unit: str
    quantity: str
    direction: str
    sign: float
    rungs: list[float | None]  # signed ("higher is worse") threshold per rank 1..4, None if absent
    raw_rungs: list[float | None]  # thresholds in the sensor's unit
    deadband: float
    min_duration_ms: int
    max_gap_ms: int
    """A longer gap between readings restarts every run (the sensor's offline limit)."""
    state: dict[str, Any] = field(default_factory=lambda: {
        "level": 0, "since": [-1] * N_RANKS, "last_ts": -1, "episode_ts": -1, "peak": 0,
    })


class BaselineEngine:
    """Per-reading evaluation of every threshold rule of ``config``."""

    def __init__(self, config: Config) -> None:
        self.rules: dict[tuple[str, str], list[BaselineRule]] = {}
        for site in config.sites:
            for sensor in site.sensors:
                compiled: list[BaselineRule] = []
                for rule in sensor.thresholds:
                    sign = 1.0 if rule.direction == "high" else -1.0
                    rungs: list[float | None] = [None] * N_RANKS
                    raw: list[float | None] = [None] * N_RANKS
                    for step in rule.ladder:
                        rungs[LEVELS.index(step.level) - 1] = sign * step.value
                        raw[LEVELS.index(step.level) - 1] = step.value
                    compiled.append(BaselineRule(
                        site=site.id, sensor=sensor.id, rule=rule.rule, unit=sensor.unit,
                        quantity=sensor.quantity, direction=rule.direction, sign=sign, rungs=rungs,
                        raw_rungs=raw, deadband=rule.deadband,
                        min_duration_ms=round(rule.min_duration_s * 1000),
                        max_gap_ms=round(sensor.period_s * sensor.quality.offline_after_periods * 1000),
                    ))
                self.rules[(site.id, sensor.id)] = compiled
        self.readings = 0
        self.evaluated = 0
        self.bad_quality = 0
        self.unknown = 0
        self.stale = 0

    def process(self, site: Sequence[str], sensor: Sequence[str], ts: np.ndarray | Sequence[int],
                v: np.ndarray | Sequence[float], q: np.ndarray | Sequence[int]) -> list[WarningEvent]:
        """Evaluate readings one at a time, in the order given; return the level changes."""
        out: list[WarningEvent] = []
        ts_list = ts.tolist() if isinstance(ts, np.ndarray) else list(ts)
        v_list = v.tolist() if isinstance(v, np.ndarray) else list(v)
        q_list = q.tolist() if isinstance(q, np.ndarray) else list(q)
        for s, x, t, value, quality in zip(site, sensor, ts_list, v_list, q_list):
            self.readings += 1
            rules = self.rules.get((s, x))
            if rules is None:
                self.unknown += 1
                continue
            if quality != 0:
                self.bad_quality += 1
                continue
            self.evaluated += 1
            for rule in rules:
                event = self._evaluate(rule, t, value)
                if event is not None:
                    out.append(event)
        return out

    def _evaluate(self, rule: BaselineRule, ts: int, value: float) -> WarningEvent | None:
        st = rule.state
        if ts <= st["last_ts"]:  # a duplicate or a late reading changes nothing
            self.stale += 1
            return None
        if st["last_ts"] >= 0 and ts - st["last_ts"] > rule.max_gap_ms:
            st["since"] = [-1] * N_RANKS  # no duration spans a data gap
        st["last_ts"] = ts
        x = value * rule.sign
        level = st["level"]
        since = st["since"]
        new_level = 0
        for rank in range(1, N_RANKS + 1):
            rung = rule.rungs[rank - 1]
            if rung is None:
                since[rank - 1] = -1
                continue
            tol = 1e-9 * max(1.0, abs(rung))  # "exactly at the threshold" survives float rounding
            if level >= rank:
                holds = x >= rung - rule.deadband - tol
            else:
                holds = x >= rung - tol
            if not holds:
                since[rank - 1] = -1
                continue
            if since[rank - 1] < 0:
                since[rank - 1] = ts
            if level >= rank or ts - since[rank - 1] >= rule.min_duration_ms:
                new_level = rank
        if new_level == level:
            return None
        if level == 0:
            st["episode_ts"] = ts
            st["peak"] = 0
        st["peak"] = max(st["peak"], new_level)
        event = self._event(rule, ts, value, level, new_level)
        st["level"] = new_level
        if new_level == 0:
            st["episode_ts"] = -1
            st["peak"] = 0
        return event

    @staticmethod
    def _event(rule: BaselineRule, ts: int, value: float, previous: int, level: int) -> WarningEvent:
        st = rule.state
        threshold = rule.raw_rungs[(level if level else previous) - 1]
        subject = f"{rule.site}/{rule.sensor}"
        return WarningEvent(
            episode=episode_id(subject, rule.rule, st["episode_ts"]),
            site=rule.site, subject=subject, rule=rule.rule, kind=event_kind(previous, level),
            level=LEVELS[level], previous=LEVELS[previous], ts=ts, emitted_at=ts, value=value,
            threshold=threshold, unit=rule.unit,
            detail={"peak": LEVELS[st["peak"]], "quantity": rule.quantity,
                    "direction": rule.direction, "raised_ts": st["episode_ts"]},
        )

    def iter_state(self) -> Iterator[BaselineRule]:
        for rules in self.rules.values():
            yield from rules
