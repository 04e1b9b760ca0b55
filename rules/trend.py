"""Trend forecast: a least-squares line gives the time left before the next rung. The pure engine.

Every sensor with a ``trend:`` rule *and* at least one threshold rule is a *row*
(:class:`TrendTable`); state lives in preallocated arrays (:class:`TrendState`); a micro-batch is
evaluated by one compiled loop (:func:`rules.kernels.trend_loop`). A trend rule on a sensor without threshold rules
has nothing to forecast and is left out of the table (:attr:`TrendTable.skipped` names them).

At each reading ``(ts, v)`` of a row (event time):

- the reading is kept in a ring of :data:`RING` = 64 readings, subsampled to cover ``window_s`` as
  in :mod:`rules.rate` (every reading is kept when the period is at least ``window / 62``);
- the kept readings with ``ts_i >= ts - window`` are fitted by least squares; ``points`` is their
  number. With fewer than ``min_points`` (or all at one instant) the row is *not evaluated*: its
  forecast state is unchanged (after a gap longer than the window nothing is raised until the
  window has filled again);
- the target is the next rung of the sensor's *first* threshold rule beyond the current value in
  that rule's direction (``high``: the lowest rung ``> v``; ``low``: the highest rung ``< v``; a
  value exactly at a rung has reached it, so the target is the one after);
- ``eta_s = distance / slope`` when the line moves toward the target (slope ``> 0`` for high,
  ``< 0`` for low), else infinite; infinite too when no rung is left (beyond red);
- hysteresis: a forecast is raised when ``eta_s < horizon_s`` and cleared when
  ``eta_s >= clear_factor x horizon_s`` (default 1.2), when the slope turns, or no rung is left.

The forecast's level is the rule's fixed ``level`` (default yellow; see :class:`config.rules.TrendRule`).
Events: ``value`` = the current reading, ``threshold`` = the target rung (None when none),
``unit`` = the sensor's, ``detail`` = ``eta_s`` (None when infinite), ``target_level``,
``target_value``, ``slope_per_s`` (unit per second), ``points``, ``horizon_s``, ``raised_ts``.

Bytes per row: ring 64 x 16 = 1,024 (the window buffer), head 1, last_ts 8, level 1, episode_ts 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from config.models import LEVELS, Config
from formats.warning import WarningEvent
from rules.kernels import trend_loop
from rules.rate import RingState, ring_export, ring_import
from rules.rows import RowNames, gap_limits, in_ts_order, ladder_rungs, offline_ms, zeros
from rules.threshold import N_RANKS

__all__ = ["RING", "TrendEngine", "TrendState", "TrendTable", "TrendTransition"]

RING = 64
"""Readings kept per row."""
NONE = np.int64(-1)
Array = np.ndarray


@dataclass(frozen=True)
class TrendTable(RowNames):
    """Compiled trend rules: one row per sensor with a trend rule and a threshold rule."""

    site: list[str]
    sensor: list[str]
    rule: list[str]
    unit: list[str]
    quantity: list[str]
    sign: Array  # (n,) float64 +1 high, -1 low (the first threshold rule's direction)
    rungs: Array  # (n, 4) float64 signed rungs blue..red, +inf where absent
    raw_rungs: Array  # (n, 4) float64 rungs in the sensor's unit, nan where absent
    window_ms: Array  # (n,) int64
    spacing_ms: Array  # (n,) int64
    horizon_s: Array  # (n,) float64
    clear_s: Array  # (n,) float64 clear_factor x horizon_s
    min_points: Array  # (n,) int64
    level: Array  # (n,) int8 rank of the forecast level
    row_of_sensor: Array  # (n_sensors,) int64, -1 without a row
    sensor_index: dict[tuple[str, str], int]
    rows_of_site: dict[str, Array]
    skipped: list[str]  # ``site/sensor`` with a trend rule but no threshold rule
    max_gap_ms: Array | None = None
    """(n,) int64: a longer gap between readings empties the ring (the sensor's offline limit):
    no line is fitted across a data gap."""

    @classmethod
    def from_config(cls, config: Config) -> TrendTable:
        cols: dict[str, list[str]] = {k: [] for k in ("site", "sensor", "rule", "unit", "quantity")}
        sign: list[float] = []
        rungs: list[Array] = []
        raw: list[Array] = []
        nums: dict[str, list[float]] = {k: [] for k in ("window", "horizon", "clear", "points", "level", "gap")}
        sensor_index: dict[tuple[str, str], int] = {}
        row_of_sensor: list[int] = []
        rows_of_site: dict[str, list[int]] = {}
        skipped: list[str] = []
        for site in config.sites:  # same order as ThresholdTable: sites, then sensors
            for sensor in site.sensors:
                sensor_index[(site.id, sensor.id)] = len(row_of_sensor)
                rule = sensor.trend
                if rule is not None and not sensor.thresholds:
                    skipped.append(f"{site.id}/{sensor.id}")
                if rule is None or not sensor.thresholds:
                    row_of_sensor.append(-1)
                    continue
                row_of_sensor.append(len(sign))
                rows_of_site.setdefault(site.id, []).append(len(sign))
                target = sensor.thresholds[0]
                s, rung, raw_rung = ladder_rungs(target.direction, target.ladder)
                for key, val in zip(cols, (site.id, sensor.id, rule.rule, sensor.unit, sensor.quantity), strict=True):
                    cols[key].append(val)
                sign.append(s)
                rungs.append(rung)
                raw.append(raw_rung)
                for key, num in (("window", rule.window_s), ("horizon", rule.horizon_s),
                                 ("clear", rule.clear_factor * rule.horizon_s), ("points", rule.min_points),
                                 ("level", LEVELS.index(rule.level)),
                                 ("gap", offline_ms(sensor))):
                    nums[key].append(num)
        window_ms = np.rint(np.asarray(nums["window"], dtype=np.float64) * 1000).astype(np.int64)
        return cls(
            **cols,
            sign=np.asarray(sign, dtype=np.float64),
            rungs=np.asarray(rungs, dtype=np.float64).reshape(-1, N_RANKS),
            raw_rungs=np.asarray(raw, dtype=np.float64).reshape(-1, N_RANKS),
            window_ms=window_ms,
            spacing_ms=np.maximum(window_ms // (RING - 2), 1),
            horizon_s=np.asarray(nums["horizon"], dtype=np.float64),
            clear_s=np.asarray(nums["clear"], dtype=np.float64),
            min_points=np.asarray(nums["points"], dtype=np.int64),
            level=np.asarray(nums["level"], dtype=np.int8),
            row_of_sensor=np.asarray(row_of_sensor, dtype=np.int64),
            sensor_index=sensor_index,
            rows_of_site={k: np.asarray(v, dtype=np.int64) for k, v in rows_of_site.items()},
            skipped=skipped,
            max_gap_ms=np.asarray(nums["gap"], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.sign)


@dataclass
class TrendState(RingState):
    """Per-row state, preallocated: the ring of recent readings and the open forecast."""

    level: Array  # (n,) int8 rank of the open forecast, 0 when none
    episode_ts: Array  # (n,) int64 ms of the reading that raised the open forecast, -1 if none

    @classmethod
    def empty(cls, n: int) -> TrendState:
        return cls(**cls.rings(n, RING), level=zeros(n, dtype=np.int8), episode_ts=np.full(n, NONE, dtype=np.int64))

    def reset_rows(self, rows: Array) -> None:
        super().reset_rows(rows)
        self.level[rows] = 0
        self.episode_ts[rows] = NONE


@dataclass(frozen=True, slots=True)
class TrendTransition:
    """A forecast raised or cleared, before it is dressed as a :class:`WarningEvent`."""

    row: int
    ts: int
    value: float
    previous: int
    level: int
    episode_ts: int
    eta_s: float  # inf when the line does not reach a rung
    target: int  # rank 1..4 of the target rung, 0 when none
    slope_per_s: float
    points: int


class TrendEngine:
    """Evaluates micro-batches of readings against the trend rules, updating state in place."""

    def __init__(self, table: TrendTable, state: TrendState | None = None) -> None:
        self.table = table
        self.state = state if state is not None else TrendState.empty(len(table))
        self.ignored_stale = 0  # readings not newer than the row's last one
        self.ignored_invalid = 0  # non-finite values
        self._max_gap = gap_limits(table.max_gap_ms, len(table))

    def process(self, sensor_idx: Array, ts: Array, value: Array, *, ordered: bool = False) -> list[TrendTransition]:
        """Evaluate readings (dense sensor index, epoch ms, value); return forecasts raised and
        cleared by (ts, row). Sensors without a trend row are skipped. Readings are evaluated per
        row in ts order (``ordered``: each sensor's already come in ts order)."""
        idx, ts, val = in_ts_order(sensor_idx, ts, value, ordered)
        st, tb = self.state, self.table
        stale, invalid, changes, fits = trend_loop(
            idx, ts, val, tb.row_of_sensor, tb.sign, tb.rungs, tb.window_ms, tb.spacing_ms, tb.horizon_s,
            tb.clear_s, tb.min_points, tb.level, self._max_gap, st.ring_ts, st.ring_v, st.head, st.last_ts,
            st.level, st.episode_ts)
        self.ignored_stale += int(stale)
        self.ignored_invalid += int(invalid)
        out = [TrendTransition(row, int(ts[i]), float(val[i]), old, new, episode_ts, eta, target, slope, points)
               for (row, i, old, new, episode_ts, target, points), (eta, slope) in zip(changes.tolist(), fits.tolist())]
        out.sort(key=lambda t: (t.ts, t.row))
        return out

    def to_event(self, t: TrendTransition, emitted_at: int) -> WarningEvent:
        tb = self.table
        target_value = float(tb.raw_rungs[t.row, t.target - 1]) if t.target else None
        return tb.event(t.row, previous=t.previous, level=t.level, ts=t.ts, episode_ts=t.episode_ts,
                        emitted_at=emitted_at, value=t.value, threshold=target_value,
                        detail={
                            "eta_s": t.eta_s if np.isfinite(t.eta_s) else None,
                            "target_level": LEVELS[t.target] if t.target else None,
                            "target_value": target_value,
                            "slope_per_s": t.slope_per_s,
                            "points": t.points,
                            "horizon_s": float(tb.horizon_s[t.row]),
                            "raised_ts": t.episode_ts,
                            "quantity": tb.quantity[t.row],
                        },
        )

    # -- state ----------------------------------------------------------------------------------
    def export_site(self, site: str) -> dict[str, Any]:
        """The site's trend state, JSON-able, keyed ``sensor|rule``."""
        st, rows = self.state, self._rows(site)
        cols = zip(rows.tolist(), st.last_ts[rows].tolist(), st.level[rows].tolist(), st.episode_ts[rows].tolist(),
                   ring_export(st.ring_ts, st.ring_v, st.head, rows))
        return {self.table.key(r): {"last_ts": last_ts, "level": level, "episode_ts": episode_ts, "ring": ring}
                for r, last_ts, level, episode_ts, ring in cols}

    def import_site(self, site: str, saved: dict[str, Any]) -> None:
        """Replace the site's trend state with ``saved`` (rows missing from it start fresh)."""
        st, rows = self.state, self._rows(site)
        st.reset_rows(rows)
        for r in rows:
            if (data := saved.get(self.table.key(int(r)))) is not None:
                st.last_ts[r] = data["last_ts"]
                st.level[r] = data["level"]
                st.episode_ts[r] = data["episode_ts"]
                ring_import(st.ring_ts, st.ring_v, st.head, int(r), data["ring"])

    def _rows(self, site: str) -> Array:
        return self.table.rows_of_site.get(site, np.empty(0, dtype=np.int64))
