"""Threshold rules over a level ladder, with deadband and minimum duration: the pure engine.

Every (sensor, rule) pair is a *row*. Its ladder, deadband and minimum duration are compiled
once into dense numpy arrays (:class:`ThresholdTable`); per-row state lives in preallocated arrays
(:class:`ThresholdState`). A micro-batch is evaluated by one compiled loop over the readings
(:func:`rules.kernels.threshold_loop`), each row's readings in timestamp order.

Semantics (event time; values are made "higher is worse" by multiplying low rules by -1):

- rung ``k`` *holds* at a reading when ``v >= rung_k`` -- exactly at the threshold counts --
  or, while the level is already at or above ``k``, when ``v >= rung_k - deadband``
  (hysteresis: a value hovering at the threshold does not flap);
- ``since_k`` is the timestamp of the first reading of the current unbroken run where rung k holds;
- the level becomes the highest ``k`` that holds and either is already reached or has held for
  ``min_duration`` (``ts - since_k >= min_duration``) and for ``min_samples`` consecutive
  readings: a spike shorter than that raises nothing, one reading off the rung restarts both;
- stepping down is immediate once the deadband is passed (the deadband is the hysteresis);
- a reading whose timestamp is not newer than the row's last one changes nothing (duplicates
  and redelivery after a crash are idempotent);
- a gap between two readings longer than the sensor's offline limit (k x its period) restarts
  every run: a minimum duration never spans a data gap, so no warning is raised across one.

No faust, kafka or MQTT here: the worker is a thin shell around :meth:`ThresholdEngine.process`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from config.models import LEVELS, Config
from formats.warning import WarningEvent
from rules.kernels import threshold_loop
from rules.rows import RowNames, gap_limits, in_ts_order, ladder_rungs, offline_ms, zeros

__all__ = ["ThresholdEngine", "ThresholdState", "ThresholdTable", "Transition"]

N_RANKS = len(LEVELS) - 1  # blue..red
NONE = np.int64(-1)


@dataclass(frozen=True)
class ThresholdTable(RowNames):
    """Compiled rules: one row per (site, sensor, rule), dense arrays indexed by row."""

    site: list[str]
    sensor: list[str]
    rule: list[str]
    unit: list[str]
    quantity: list[str]
    direction: list[str]
    sign: np.ndarray  # (n,) float64: +1 high, -1 low
    rungs: np.ndarray  # (n, 4) float64 signed thresholds for blue..red, +inf where absent
    raw_rungs: np.ndarray  # (n, 4) float64 thresholds in the sensor's unit, nan where absent
    deadband: np.ndarray  # (n,) float64
    min_duration_ms: np.ndarray  # (n,) int64
    sensor_index: dict[tuple[str, str], int]  # (site, sensor) -> dense sensor index
    row_start: np.ndarray  # (n_sensors,) int64: first row of each sensor
    row_count: np.ndarray  # (n_sensors,) int64: rows (rules) of each sensor
    rows_of_site: dict[str, np.ndarray]
    max_gap_ms: np.ndarray | None = None
    """(n,) int64: a gap between readings longer than this restarts every duration (the data
    quality offline limit, k x the period): a minimum duration never spans a data gap."""
    min_samples: np.ndarray | None = None
    """(n,) int32: consecutive readings a rung must hold before its level is entered (1 if None)."""

    @classmethod
    def from_config(cls, config: Config) -> ThresholdTable:
        cols: dict[str, list] = {k: [] for k in ("site", "sensor", "rule", "unit", "quantity", "direction")}
        sign, rungs, raw, deadband, min_dur, max_gap, min_samples = [], [], [], [], [], [], []
        sensor_index: dict[tuple[str, str], int] = {}
        row_start, row_count = [], []
        rows_of_site: dict[str, list[int]] = {}
        for site in config.sites:
            for sensor in site.sensors:
                sensor_index[(site.id, sensor.id)] = len(row_start)
                row_start.append(len(sign))
                row_count.append(len(sensor.thresholds))
                for rule in sensor.thresholds:
                    rows_of_site.setdefault(site.id, []).append(len(sign))
                    s, rung, raw_rung = ladder_rungs(rule.direction, rule.ladder)
                    for key, val in (
                        ("site", site.id), ("sensor", sensor.id), ("rule", rule.rule),
                        ("unit", sensor.unit), ("quantity", sensor.quantity), ("direction", rule.direction),
                    ):
                        cols[key].append(val)
                    sign.append(s)
                    rungs.append(rung)
                    raw.append(raw_rung)
                    deadband.append(rule.deadband)
                    min_dur.append(int(round(rule.min_duration_s * 1000)))
                    min_samples.append(rule.min_samples)
                    max_gap.append(offline_ms(sensor))
        return cls(
            **cols,
            sign=np.asarray(sign, dtype=np.float64),
            rungs=np.asarray(rungs, dtype=np.float64).reshape(-1, N_RANKS),
            raw_rungs=np.asarray(raw, dtype=np.float64).reshape(-1, N_RANKS),
            deadband=np.asarray(deadband, dtype=np.float64),
            min_duration_ms=np.asarray(min_dur, dtype=np.int64),
            min_samples=np.asarray(min_samples, dtype=np.int32),
            sensor_index=sensor_index,
            row_start=np.asarray(row_start, dtype=np.int64),
            row_count=np.asarray(row_count, dtype=np.int64),
            rows_of_site={k: np.asarray(v, dtype=np.int64) for k, v in rows_of_site.items()},
            max_gap_ms=np.asarray(max_gap, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.sign)


@dataclass
class ThresholdState:
    """Per-row state, preallocated. ``since[:, k]`` is -1 when rung k does not hold."""

    level: np.ndarray  # (n,) int8 current level rank 0..4
    since: np.ndarray  # (n, 4) int64 ms
    last_ts: np.ndarray  # (n,) int64 ms, -1 before the first reading
    episode_ts: np.ndarray  # (n,) int64 ms of the reading that raised the open episode, -1 if none
    peak: np.ndarray  # (n,) int8 highest level of the open episode
    count: np.ndarray  # (n, 4) int32 consecutive readings rung k has held (0 when it does not)

    @classmethod
    def empty(cls, n: int) -> ThresholdState:
        return cls(
            level=zeros(n, dtype=np.int8),
            since=np.full((n, N_RANKS), NONE, dtype=np.int64),
            last_ts=np.full(n, NONE, dtype=np.int64),
            episode_ts=np.full(n, NONE, dtype=np.int64),
            peak=zeros(n, dtype=np.int8),
            count=zeros((n, N_RANKS), dtype=np.int32),
        )

    def export_rows(self, rows: Iterable[int]) -> dict[int, list[int]]:
        """Plain lists for persistence: [level, since x4, last_ts, episode_ts, peak, count x4]."""
        rows = np.asarray(rows, dtype=np.int64)
        cols = zip(rows.tolist(), self.level[rows].tolist(), self.since[rows].tolist(), self.last_ts[rows].tolist(),
                   self.episode_ts[rows].tolist(), self.peak[rows].tolist(), self.count[rows].tolist())
        return {r: [level, *since, last_ts, episode_ts, peak, *count]
                for r, level, since, last_ts, episode_ts, peak, count in cols}

    def import_row(self, row: int, saved: list[int]) -> None:
        self.level[row] = saved[0]
        self.since[row] = saved[1 : 1 + N_RANKS]
        self.last_ts[row] = saved[1 + N_RANKS]
        self.episode_ts[row] = saved[2 + N_RANKS]
        self.peak[row] = saved[3 + N_RANKS]
        # state saved before min_samples existed has no counts: a held rung counts as one reading
        counts = saved[4 + N_RANKS : 4 + 2 * N_RANKS]
        self.count[row] = counts if len(counts) == N_RANKS else [1 if x >= 0 else 0 for x in self.since[row]]

    def reset_rows(self, rows: np.ndarray) -> None:
        self.level[rows] = 0
        self.since[rows] = NONE
        self.last_ts[rows] = NONE
        self.episode_ts[rows] = NONE
        self.peak[rows] = 0
        self.count[rows] = 0


@dataclass(frozen=True, slots=True)
class Transition:
    """One level change of one row, before it is dressed as a :class:`WarningEvent`."""

    row: int
    ts: int
    value: float
    previous: int
    level: int
    episode_ts: int
    peak: int


class ThresholdEngine:
    """Evaluates micro-batches of readings against the compiled rules, updating state in place."""

    def __init__(self, table: ThresholdTable, state: ThresholdState | None = None) -> None:
        self.table = table
        self.state = state if state is not None else ThresholdState.empty(len(table))
        self.ignored_stale = 0  # readings not newer than the row's last one
        # the rungs to enter and to stay at a level, compiled once: a relative tolerance so that
        # "exactly at the edge" survives float rounding (4.8 + 0.1), and the deadband to stay
        rung = table.rungs
        tol = 1e-9 * np.maximum(1.0, np.abs(np.where(np.isfinite(rung), rung, 0.0)))
        self._enter = rung - tol
        self._stay = rung - table.deadband[:, None] - tol
        # consecutive-sample counts matter only where a rule asks for more than one sample
        self._counts = table.min_samples is not None and bool((table.min_samples > 1).any())
        n = len(table)
        self._min_samples = table.min_samples if table.min_samples is not None else np.ones(n, np.int32)
        self.max_gap = gap_limits(table.max_gap_ms, n)

    def process(self, sensor_idx: np.ndarray, ts: np.ndarray, value: np.ndarray, *,
                ordered: bool = False) -> list[Transition]:
        """Evaluate readings (dense sensor index, epoch ms, value) and return the level changes.

        Readings may come in any order; each row's are evaluated in timestamp order. ``ordered``:
        the caller guarantees that each sensor's readings already come in timestamp order (the
        engine's late check does), so no order is worked out.
        """
        idx, ts, val = in_ts_order(sensor_idx, ts, value, ordered)
        st, tb = self.state, self.table
        stale, changes = threshold_loop(
            idx, ts, val, tb.row_start, tb.row_count, tb.sign, self._enter, self._stay, tb.min_duration_ms,
            self.max_gap, self._min_samples, self._counts,
            st.level, st.since, st.last_ts, st.episode_ts, st.peak, st.count)
        self.ignored_stale += int(stale)
        out = [Transition(row, int(ts[i]), float(val[i]), old, new, episode_ts, peak)
               for row, i, old, new, episode_ts, peak in changes.tolist()]
        out.sort(key=lambda t: (t.ts, t.row))
        return out

    def to_event(self, t: Transition, emitted_at: int) -> WarningEvent:
        tb = self.table
        rung_rank = t.level if t.level else t.previous
        threshold = tb.raw_rungs[t.row, rung_rank - 1]
        return tb.event(t.row, previous=t.previous, level=t.level, ts=t.ts, episode_ts=t.episode_ts,
                        emitted_at=emitted_at, value=t.value,
                        threshold=None if np.isnan(threshold) else float(threshold),
                        detail={
                            "peak": LEVELS[t.peak],
                            "quantity": tb.quantity[t.row],
                            "direction": tb.direction[t.row],
                            "raised_ts": t.episode_ts,
                        },
        )
