"""Rate-of-change rules over a sliding window of event time: the pure engine.

Every (sensor, rate rule) pair is a *row* (:class:`RateTable`, dense arrays); per-row state lives
in preallocated arrays (:class:`RateState`). A micro-batch is evaluated by one compiled loop over
the readings (:func:`rules.kernels.rate_loop`), each row's readings in ts order.

Rate. At a reading ``(ts, v)`` the rate is ``(v - v_o) / (ts - ts_o) * per_s`` where ``(ts_o, v_o)``
is the oldest kept reading with ``ts_o >= ts - window`` -- a reading exactly ``window`` old is
inside. No rate (so no level change) when nothing older than ``ts`` is in the window (a row's first
reading, after a gap longer than the window) or the two readings lie less than ``min_span_s`` apart.

Ring. Each row keeps the last :data:`RING` = 32 readings ``(ts, v)``, subsampled so that they
cover the window: the newest reading always overwrites the newest slot unless that slot lies at
least ``spacing = window / (RING - 2)`` after the slot before it, in which case the reading takes a
new slot. So all gaps between kept readings but the newest one are ``>= spacing`` and the ring
spans at least the window. When the sensor's period is at least ``spacing`` (e.g. 10-min readings,
a 1 h or 5 h window) every reading is kept and the rate is exact as defined; when the period is
shorter, the oldest *kept* reading in the window is used, at most ``spacing + period`` younger
than the true oldest one (the rate is still exact for the two readings it is taken from).

Levels. The rates are fed, per row in timestamp order, into an inner
:class:`rules.threshold.ThresholdEngine` whose rows are the rate rows: the ladder on the signed
rate, the deadband and the minimum duration behave exactly as for threshold rules. A reading not
newer than the row's last one changes nothing (``ignored_stale``); non-finite values are ignored.

Bytes per row: ring 32 x (8 + 8) = 512 (the window buffer), head 1, last_ts 8, plus the inner
threshold state (level 1, since 4 x 8, last_ts 8, episode_ts 8, peak 1 = 50).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from config.models import LEVELS, Config
from formats.warning import WarningEvent
from rules.kernels import rate_loop
from rules.rows import in_ts_order, ladder_rungs, offline_ms, zeros
from rules.threshold import N_RANKS, ThresholdEngine, ThresholdTable, Transition

__all__ = ["EMPTY_TS", "RING", "RateEngine", "RateState", "RateTable"]

RING = 32
"""Readings kept per row."""
EMPTY_TS = np.int64(-(1 << 62))
"""Timestamp of an empty ring slot: older than any window."""
NONE = np.int64(-1)
Array = np.ndarray


def ring_export(ring_ts: Array, ring_v: Array, head: Array, rows: Array) -> list[list[list[float]]]:
    """The kept readings of each row, oldest first, as ``[ts, v]`` lists (all rows at once)."""
    rows = np.asarray(rows, dtype=np.int64)
    k = ring_ts.shape[1]
    slots = (head[rows].astype(np.int64)[:, None] + 1 + np.arange(k)) % k  # (m, k) oldest first
    ts, v = ring_ts[rows[:, None], slots], ring_v[rows[:, None], slots]
    r_i, c_i = np.nonzero(ts != EMPTY_TS)  # row by row, oldest first
    bounds = np.searchsorted(r_i, np.arange(len(rows) + 1)).tolist()
    pairs = [[t, x] for t, x in zip(ts[r_i, c_i].tolist(), v[r_i, c_i].tolist())]
    return [pairs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def ring_import(ring_ts: Array, ring_v: Array, head: Array, row: int, saved: list[list[float]]) -> None:
    """Inverse of :func:`ring_export` (the row must be reset first)."""
    for i, (t, v) in enumerate(saved[-ring_ts.shape[1]:]):
        ring_ts[row, i] = int(t)
        ring_v[row, i] = float(v)
        head[row] = i


@dataclass(frozen=True)
class RateTable:
    """Compiled rate rules: one row per (site, sensor, rate rule), dense arrays by row."""

    levels: ThresholdTable  # the inner ladder table, one row per rate row (unit = rate unit)
    window_ms: Array  # (n,) int64
    spacing_ms: Array  # (n,) int64 ring subsampling step, window / (RING - 2)
    min_span_ms: Array  # (n,) int64
    per_s: Array  # (n,) float64
    window_s: list[float]
    sensor_index: dict[tuple[str, str], int]  # (site, sensor) -> dense index, as ThresholdTable
    row_start: Array  # (n_sensors,) int64
    row_count: Array  # (n_sensors,) int64
    rows_of_site: dict[str, Array]

    @classmethod
    def from_config(cls, config: Config) -> RateTable:
        cols: dict[str, list[str]] = {k: [] for k in ("site", "sensor", "rule", "unit", "quantity", "direction")}
        sign: list[float] = []
        rungs: list[Array] = []
        raw: list[Array] = []
        deadband: list[float] = []
        min_dur: list[int] = []
        window: list[float] = []
        min_span: list[float] = []
        per: list[float] = []
        max_gap: list[int] = []
        sensor_index: dict[tuple[str, str], int] = {}
        row_start: list[int] = []
        row_count: list[int] = []
        rows_of_site: dict[str, list[int]] = {}
        for site in config.sites:  # same order as ThresholdTable: sites, then sensors
            for sensor in site.sensors:
                sensor_index[(site.id, sensor.id)] = len(row_start)
                row_start.append(len(sign))
                row_count.append(len(sensor.rate))
                for rule in sensor.rate:
                    rows_of_site.setdefault(site.id, []).append(len(sign))
                    s, rung, raw_rung = ladder_rungs(rule.direction, rule.ladder)
                    names = (site.id, sensor.id, rule.rule, f"{sensor.unit}/{rule.per_unit}",
                             sensor.quantity, rule.direction)
                    for key, val in zip(cols, names, strict=True):
                        cols[key].append(val)
                    sign.append(s)
                    rungs.append(rung)
                    raw.append(raw_rung)
                    deadband.append(rule.deadband)
                    min_dur.append(int(round(rule.min_duration_s * 1000)))
                    window.append(rule.window_s)
                    min_span.append(rule.min_span_s)
                    per.append(rule.per_s)
                    # as for thresholds: a gap longer than the offline limit restarts min_duration
                    max_gap.append(offline_ms(sensor))
        n = len(sign)
        window_ms = np.rint(np.asarray(window, dtype=np.float64) * 1000).astype(np.int64)
        levels = ThresholdTable(
            **cols,
            sign=np.asarray(sign, dtype=np.float64),
            rungs=np.asarray(rungs, dtype=np.float64).reshape(-1, N_RANKS),
            raw_rungs=np.asarray(raw, dtype=np.float64).reshape(-1, N_RANKS),
            deadband=np.asarray(deadband, dtype=np.float64),
            min_duration_ms=np.asarray(min_dur, dtype=np.int64),
            sensor_index={},
            row_start=np.arange(n, dtype=np.int64),
            row_count=np.ones(n, dtype=np.int64),
            rows_of_site={},
            max_gap_ms=np.asarray(max_gap, dtype=np.int64),
        )
        return cls(
            levels=levels,
            window_ms=window_ms,
            spacing_ms=np.maximum(window_ms // (RING - 2), 1),
            min_span_ms=np.rint(np.asarray(min_span, dtype=np.float64) * 1000).astype(np.int64),
            per_s=np.asarray(per, dtype=np.float64),
            window_s=window,
            sensor_index=sensor_index,
            row_start=np.asarray(row_start, dtype=np.int64),
            row_count=np.asarray(row_count, dtype=np.int64),
            rows_of_site={k: np.asarray(v, dtype=np.int64) for k, v in rows_of_site.items()},
        )

    def __len__(self) -> int:
        return len(self.window_ms)

    def key(self, row: int) -> str:
        """The row's name in persisted state: ``sensor|rule`` (the site is the table key)."""
        return self.levels.key(row)


@dataclass
class RingState:
    """Per-row ring of recent readings, the state of the rate and the trend rules."""

    ring_ts: Array  # (n, size) int64 ms, EMPTY_TS where empty; size: the rule kind's RING
    ring_v: Array  # (n, size) float64
    head: Array  # (n,) int8 slot of the newest kept reading
    last_ts: Array  # (n,) int64 ms of the newest evaluated reading, -1 before the first

    @staticmethod
    def rings(n: int, size: int) -> dict[str, Array]:
        """The fields of ``n`` empty rings of ``size`` readings."""
        return {"ring_ts": np.full((n, size), EMPTY_TS, dtype=np.int64), "ring_v": zeros((n, size), dtype=np.float64),
                "head": zeros(n, dtype=np.int8), "last_ts": np.full(n, NONE, dtype=np.int64)}

    def reset_rows(self, rows: Array) -> None:
        self.ring_ts[rows] = EMPTY_TS
        self.ring_v[rows] = 0.0
        self.head[rows] = 0
        self.last_ts[rows] = NONE


@dataclass
class RateState(RingState):
    """The rate rows' rings; the ladder state lives in the inner threshold engine."""

    @classmethod
    def empty(cls, n: int) -> RateState:
        return cls(**cls.rings(n, RING))


class RateEngine:
    """Evaluates micro-batches of readings against the rate rules, updating state in place."""

    def __init__(self, table: RateTable, state: RateState | None = None) -> None:
        self.table = table
        self.state = state if state is not None else RateState.empty(len(table))
        self.levels = ThresholdEngine(table.levels)
        self.ignored_stale = 0  # readings not newer than the row's last one
        self.ignored_invalid = 0  # non-finite values

    def process(self, sensor_idx: Array, ts: Array, value: Array, *, ordered: bool = False) -> list[Transition]:
        """Evaluate readings (dense sensor index, epoch ms, value); return the level changes of the
        rate rows by (ts, row). ``Transition.value`` is the rate, in ``unit / per_s``. Readings are
        evaluated per row in ts order (``ordered``: each sensor's already come in ts order)."""
        idx, ts, val = in_ts_order(sensor_idx, ts, value, ordered)
        st, tb = self.state, self.table
        stale, invalid, r_rows, r_ts, r_rate = rate_loop(
            idx, ts, val, tb.row_start, tb.row_count, tb.window_ms, tb.spacing_ms, tb.min_span_ms, tb.per_s,
            self.levels.max_gap, st.ring_ts, st.ring_v, st.head, st.last_ts)
        self.ignored_stale += int(stale)
        self.ignored_invalid += int(invalid)
        # each rate row's rates come in ts order: the ladder needs no ordering
        return self.levels.process(r_rows, r_ts, r_rate, ordered=True)

    def to_event(self, t: Transition, emitted_at: int) -> WarningEvent:
        lv = self.table.levels
        rank = t.level if t.level else t.previous
        threshold = lv.raw_rungs[t.row, rank - 1]
        return lv.event(t.row, previous=t.previous, level=t.level, ts=t.ts, episode_ts=t.episode_ts,
                        emitted_at=emitted_at, value=t.value,
                        threshold=None if np.isnan(threshold) else float(threshold),
                        detail={
                            "window_s": self.table.window_s[t.row],
                            "per_s": float(self.table.per_s[t.row]),
                            "peak": LEVELS[t.peak],
                            "raised_ts": t.episode_ts,
                            "quantity": lv.quantity[t.row],
                            "direction": lv.direction[t.row],
                        },
        )

    # -- state ----------------------------------------------------------------------------------
    def export_site(self, site: str) -> dict[str, Any]:
        """The site's rate state, JSON-able, keyed ``sensor|rule``: ring (oldest first), last_ts and
        the ladder state (ThresholdState.export_rows layout)."""
        st, rows = self.state, self._rows(site)
        ladder = self.levels.state.export_rows(rows)
        rings = ring_export(st.ring_ts, st.ring_v, st.head, rows)
        return {
            self.table.key(r): {"last_ts": last_ts, "ring": ring, "ladder": ladder[r]}
            for r, last_ts, ring in zip(rows.tolist(), st.last_ts[rows].tolist(), rings)
        }

    def import_site(self, site: str, saved: dict[str, Any]) -> None:
        """Replace the site's rate state with ``saved`` (rows missing from it start fresh)."""
        rows = self._rows(site)
        self.state.reset_rows(rows)
        self.levels.state.reset_rows(rows)
        for r in rows:
            if (data := saved.get(self.table.key(int(r)))) is not None:
                self.state.last_ts[r] = data["last_ts"]
                ring_import(self.state.ring_ts, self.state.ring_v, self.state.head, int(r), data["ring"])
                self.levels.state.import_row(int(r), data["ladder"])

    def _rows(self, site: str) -> Array:
        return self.table.rows_of_site.get(site, np.empty(0, dtype=np.int64))
