"""Sliding-window rainfall sums over a gauge's reports, any-window-met: the pure engine.

Every sensor with a ``rain:`` rule is a *row* (:class:`RainTable`, dense arrays); its state lives
in preallocated arrays (:class:`RainState`); a micro-batch is evaluated by one compiled loop over
the readings (:func:`rules.kernels_rain.rain_loop`), each row's readings in ts order.

Binning. Each row keeps a ring of 288 five-minute bins (24 h), aligned to the epoch: bin ``k``
covers ``[k * 5 min, (k + 1) * 5 min)``. A reading's rain is added to the bin of its timestamp.

Window edge. The W-hour sum at a reading stamped ``ts`` is the sum of the bins whose *start* is
``> ts - W h``: the ``12 W`` most recent bins, counting the bin that holds ``ts``. For a gauge that
reports every 5 minutes that is exactly the readings stamped in ``(ts - W h, ts]`` (a reading
exactly 1 h older than ``ts`` is out of the 1 h window); in general a window covers between
``W h - 5 min`` and ``W h`` of rain. Bins older than 24 h fall out as the ring turns; a reading
24 h or more after the newest bin starts on an empty ring (and a counter takes it as a new baseline:
the delta over such a gap cannot be placed in time, and no warning may be raised across a gap).

Inputs (STANDARDS "Rain gauges and mountain torrents"):

- ``increment``: mm since the last report (tipping bucket); a negative increment counts as 0;
- ``counter``: cumulative mm; delta = value - last value; a drop is a reset (delta = value);
  the first reading of a row only sets the baseline.

Levels. Rung ``k`` of window ``w`` *holds* when ``sum_w >= rung`` -- exactly at the rung counts --
or, while the level is already at or above ``k``, when ``sum_w >= rung - deadband``. The level is
the highest rung that holds in any window (mountain-torrent tables: a level is met when any
window is met). Rain and rungs are resolved to 0.01 mm and summed as integers, so sums are exact:
no float drift, identical whatever the batch size, bit-exact across an export/import.

Events: ``value`` is the sum of the *deciding window* and ``threshold`` its rung -- for a raised,
escalated or de-escalated level, the window holding the new level by the largest ratio
sum / rung; for a clear, the window closest (by that ratio) to still holding the level left
(ties: the shorter window). A reading not newer than the row's last one changes nothing.

Speed. A reading in the newest bin or the next (a 5-minute gauge) updates five running window
sums by the bins leaving them, O(5); other readings (a row's first, after a gap) re-sum the ring.

Bytes per row: state 66 (window sums 5 x int64 = 40, last_ts 8, counter 8, episode_ts 8, level 1,
peak 1; the newest bin's index is ``last_ts // 5 min``, derived rather than stored so that it can
never disagree; the sums are rebuilt from the bins on import, never persisted), and a window
buffer of 288 x int32 = 1,152 (0.01 mm: int32 rather than float32 for exact sums at the same
size). 1,218 bytes per gauge in all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from config.models import LEVELS, Config
from config.rules import RAIN_WINDOWS_H
from formats.warning import WarningEvent
from rules.kernels_rain import rain_loop
from rules.rows import RowNames, in_ts_order, zeros

__all__ = ["BIN_MS", "N_BINS", "RainEngine", "RainState", "RainTable", "RainTransition"]

BIN_MS = 300_000
"""Bin width, ms (5 min: the usual tipping-bucket reporting period)."""
N_BINS = 288
"""Bins in the ring: 24 h, the longest window."""
WINDOWS_H = RAIN_WINDOWS_H  # (1, 3, 6, 12, 24) h: the order of the table's window axis
WINDOW_BINS = np.array([h * 3_600_000 // BIN_MS for h in WINDOWS_H], dtype=np.int64)
N_RANKS = len(LEVELS) - 1  # blue..red
NONE = np.int64(-1)
NO_COUNTER = np.iinfo(np.int64).min  # no counter baseline yet
ABSENT = np.int64(1 << 62)  # a rung that is not configured: never met, even minus a deadband
MAX_CMM = 100_000_000_000  # clip readings at 1e9 mm (1e11 in 0.01 mm) so that nothing overflows
BIN_CAP = np.iinfo(np.int32).max
Array = np.ndarray


@dataclass(frozen=True)
class RainTable(RowNames):
    """Compiled rain rules: one row per sensor with a ``rain:`` rule, dense arrays by row."""

    site: list[str]
    sensor: list[str]
    rule: list[str]
    unit: list[str]
    quantity: list[str]
    counter: np.ndarray  # (n,) bool: input is a cumulative counter (else increments)
    rungs: np.ndarray  # (n, 5, 4) float64 mm by window (1..24 h) and level (blue..red), +inf absent
    rungs_cmm: np.ndarray  # (n, 5, 4) int64 the same in 0.01 mm, ABSENT where absent
    deadband: np.ndarray  # (n,) float64 mm
    deadband_cmm: np.ndarray  # (n,) int64 0.01 mm
    sensor_index: dict[tuple[str, str], int]  # (site, sensor) -> dense index, as ThresholdTable
    row_of_sensor: np.ndarray  # (n_sensors,) int64: the sensor's row, -1 when it has no rain rule
    rows_of_site: dict[str, np.ndarray]

    @classmethod
    def from_config(cls, config: Config) -> RainTable:
        cols: dict[str, list[str]] = {k: [] for k in ("site", "sensor", "rule", "unit", "quantity")}
        counter: list[bool] = []
        rungs: list[Array] = []
        deadband: list[float] = []
        sensor_index: dict[tuple[str, str], int] = {}
        row_of_sensor: list[int] = []
        rows_of_site: dict[str, list[int]] = {}
        for site in config.sites:  # same order as ThresholdTable: sites, then sensors
            for sensor in site.sensors:
                sensor_index[(site.id, sensor.id)] = len(row_of_sensor)
                rule = sensor.rain
                row_of_sensor.append(len(counter) if rule is not None else -1)
                if rule is None:
                    continue
                rows_of_site.setdefault(site.id, []).append(len(counter))
                names = (site.id, sensor.id, rule.rule, sensor.unit, sensor.quantity)
                for key, val in zip(cols, names, strict=True):
                    cols[key].append(val)
                rung = np.full((len(WINDOWS_H), N_RANKS), np.inf)
                for window in rule.windows:
                    w = WINDOWS_H.index(window.hours)
                    for step in window.ladder:
                        rung[w, LEVELS.index(step.level) - 1] = step.value
                counter.append(rule.input == "counter")
                rungs.append(rung)
                deadband.append(rule.deadband)
        rung_arr = np.asarray(rungs, dtype=np.float64).reshape(-1, len(WINDOWS_H), N_RANKS)
        db = np.asarray(deadband, dtype=np.float64)
        return cls(
            **cols,
            counter=np.asarray(counter, dtype=bool),
            rungs=rung_arr,
            rungs_cmm=np.where(
                np.isfinite(rung_arr), np.rint(np.nan_to_num(rung_arr, posinf=0) * 100), ABSENT
            ).astype(np.int64),
            deadband=db,
            deadband_cmm=np.rint(db * 100).astype(np.int64),
            sensor_index=sensor_index,
            row_of_sensor=np.asarray(row_of_sensor, dtype=np.int64),
            rows_of_site={k: np.asarray(v, dtype=np.int64) for k, v in rows_of_site.items()},
        )

    def __len__(self) -> int:
        return len(self.counter)


@dataclass
class RainState:
    """Per-row state, preallocated; see the module docstring for the bytes per row."""

    bins: np.ndarray  # (n, 288) int32 rain per 5-min bin, 0.01 mm; slot = bin number % 288
    sums: np.ndarray  # (n, 5) int64 the 1/3/6/12/24 h sums ending at the newest bin, 0.01 mm
    last_ts: np.ndarray  # (n,) int64 ms of the newest evaluated reading, -1 before the first
    counter: np.ndarray  # (n,) int64 last counter value, 0.01 mm; NO_COUNTER before a baseline
    level: np.ndarray  # (n,) int8 current level rank 0..4
    episode_ts: np.ndarray  # (n,) int64 ms of the reading that raised the open episode, -1 if none
    peak: np.ndarray  # (n,) int8 highest level of the open episode

    @classmethod
    def empty(cls, n: int) -> RainState:
        return cls(
            bins=zeros((n, N_BINS), dtype=np.int32),
            sums=zeros((n, len(WINDOWS_H)), dtype=np.int64),
            last_ts=np.full(n, NONE, dtype=np.int64),
            counter=np.full(n, NO_COUNTER, dtype=np.int64),
            level=zeros(n, dtype=np.int8),
            episode_ts=np.full(n, NONE, dtype=np.int64),
            peak=zeros(n, dtype=np.int8),
        )

    def reset_rows(self, rows: Array) -> None:
        self.bins[rows] = 0
        self.sums[rows] = 0
        self.last_ts[rows] = NONE
        self.counter[rows] = NO_COUNTER
        self.level[rows] = 0
        self.episode_ts[rows] = NONE
        self.peak[rows] = 0

    def export_rows(self, rows: Array) -> list[dict[str, Any]]:
        """JSON-able, one dict per row: the non-zero bins as ``[age, mm]`` (age 0 = the newest
        bin), mm to 0.01 (all rows at once)."""
        rows = np.asarray(rows, dtype=np.int64)
        last = self.last_ts[rows]
        head = np.where(last >= 0, last // BIN_MS, 0)
        ring = self.bins[rows[:, None], (head[:, None] - np.arange(N_BINS)) % N_BINS]  # newest first
        r_i, ages = np.nonzero(ring)
        bounds = np.searchsorted(r_i, np.arange(len(rows) + 1)).tolist()
        pairs = [[a, b / 100] for a, b in zip(ages.tolist(), ring[r_i, ages].tolist())]
        cols = zip(last.tolist(), self.counter[rows].tolist(), self.level[rows].tolist(),
                   self.episode_ts[rows].tolist(), self.peak[rows].tolist(), bounds[:-1], bounds[1:])
        return [{"last_ts": last_ts, "counter": None if c == NO_COUNTER else c / 100, "level": level,
                 "episode_ts": episode_ts, "peak": peak, "bins": pairs[a:b]}
                for last_ts, c, level, episode_ts, peak, a, b in cols]

    def import_row(self, row: int, saved: dict[str, Any]) -> None:
        self.reset_rows(np.array([row]))
        self.last_ts[row] = saved["last_ts"]
        c = saved["counter"]
        self.counter[row] = NO_COUNTER if c is None else round(c * 100)
        self.level[row] = saved["level"]
        self.episode_ts[row] = saved["episode_ts"]
        self.peak[row] = saved["peak"]
        head = int(self.last_ts[row]) // BIN_MS
        for age, mm in saved["bins"]:
            self.bins[row, (head - int(age)) % N_BINS] = round(mm * 100)
        ordered = self.bins[row, (head - np.arange(N_BINS)) % N_BINS].astype(np.int64)
        self.sums[row] = np.cumsum(ordered)[WINDOW_BINS - 1]


@dataclass(frozen=True, slots=True)
class RainTransition:
    """One level change of one row, before it is dressed as a :class:`WarningEvent`."""

    row: int
    ts: int
    previous: int
    level: int
    episode_ts: int
    peak: int
    window: int
    """Index into WINDOWS_H of the deciding window."""
    sums_cmm: tuple[int, ...]
    """The 1/3/6/12/24 h sums at the reading, 0.01 mm."""

    @property
    def value(self) -> float:
        """The deciding window's sum, mm."""
        return self.sums_cmm[self.window] / 100


class RainEngine:
    """Evaluates micro-batches of rain readings, updating the state in place."""

    def __init__(self, table: RainTable, state: RainState | None = None) -> None:
        self.table = table
        self.state = state if state is not None else RainState.empty(len(table))
        self.ignored_stale = 0  # readings not newer than the row's last one
        self.ignored_invalid = 0  # non-finite values

    def process(self, sensor_idx: Array, ts: Array, value: Array, *, ordered: bool = False) -> list[RainTransition]:
        """Evaluate readings (dense sensor index, epoch ms, mm); return level changes by (ts, row).

        Sensors without a rain rule are skipped; readings are evaluated per row in ts order
        (``ordered``: the caller guarantees each sensor's readings already come in ts order).
        """
        idx, ts, val = in_ts_order(sensor_idx, ts, value, ordered)
        st, tb = self.state, self.table
        stale, invalid, changes = rain_loop(
            idx, ts, val, tb.row_of_sensor, tb.counter, tb.rungs_cmm, tb.deadband_cmm, WINDOW_BINS, BIN_MS,
            MAX_CMM, int(BIN_CAP), st.bins, st.sums, st.last_ts, st.counter, st.level, st.episode_ts, st.peak)
        self.ignored_stale += int(stale)
        self.ignored_invalid += int(invalid)
        out = [RainTransition(c[0], int(ts[c[1]]), c[2], c[3], c[4], c[5], c[6], tuple(c[7:]))
               for c in changes.tolist()]
        out.sort(key=lambda t: (t.ts, t.row))
        return out

    def to_event(self, t: RainTransition, emitted_at: int) -> WarningEvent:
        tb = self.table
        rank = t.level if t.level else t.previous
        return tb.event(t.row, previous=t.previous, level=t.level, ts=t.ts, episode_ts=t.episode_ts,
                        emitted_at=emitted_at, value=t.value, threshold=float(tb.rungs[t.row, t.window, rank - 1]),
                        detail={
                            "window_h": WINDOWS_H[t.window],
                            "sums": {f"{h}h": s / 100 for h, s in zip(WINDOWS_H, t.sums_cmm)},
                            "peak": LEVELS[t.peak],
                            "raised_ts": t.episode_ts,
                            "quantity": tb.quantity[t.row],
                        },
        )

    # -- state ----------------------------------------------------------------------------------
    def export_site(self, site: str) -> dict[str, Any]:
        """The site's rain state, JSON-able, keyed ``sensor|rule``."""
        rows = self._rows(site)
        return {self.table.key(r): data for r, data in zip(rows.tolist(), self.state.export_rows(rows))}

    def import_site(self, site: str, saved: dict[str, Any]) -> None:
        """Replace the site's rain state with ``saved`` (rows missing from it start fresh)."""
        rows = self._rows(site)
        self.state.reset_rows(rows)
        for r in rows:
            if (data := saved.get(self.table.key(int(r)))) is not None:
                self.state.import_row(int(r), data)

    def _rows(self, site: str) -> Array:
        return self.table.rows_of_site.get(site, np.empty(0, dtype=np.int64))
