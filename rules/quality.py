"""Data-quality checks: offline, stuck, out of range, spike. The pure stage before the threshold rules.

A sensor in fault is *quarantined*: its readings neither raise nor clear threshold warnings until
it is healthy again (issue 5; STANDARDS: "faulty sensors look like real alarms ... disconnection must
be its own alarm type"). Per-sensor state lives in preallocated arrays indexed by the dense sensor
index of :class:`rules.threshold.ThresholdTable` (sites, then sensors, in configuration order); a
micro-batch is checked by one compiled loop over the readings (:func:`rules.kernels_quality.quality_loop`),
each sensor's readings in ts order.

Checks, per fresh reading (ts newer than the sensor's last one; older or equal ones change nothing
and are quarantined -- they were judged when they first came):

- **out_of_range**: ``v`` outside ``[lo, hi]`` (the limits themselves are in range) or not finite.
  The reading is quarantined; the sensor is in fault until a reading is back in range.
- **stuck**: ``stuck_samples`` consecutive readings with exactly equal values. The N-th reading
  enters the fault (readings 1..N-1 are evaluated); the fault ends with the first changed value.
- **spike**: a Hampel test on in-range readings against the median and MAD (median absolute
  deviation, unscaled, the sensor's unit) of the last ``spike_window`` accepted readings; no test
  until the window is full. Outlier when ``|v - median| > spike_mad * max(MAD, floor)``. The MAD
  floor keeps a flat window (MAD 0, e.g. a gas detector at 0 %LEL) from calling every change a
  spike: 1 % of the physical range span, or ``1e-3 * max(1, |median|)`` without a range.
  A spike is an *isolated* outlier: it is quarantined and reported (state ``spike``, not a fault).
  An outlier on the same side as the previous reading's is a level shift, not a spike: it is
  accepted, so a real step (a leak) is delayed by one reading at most, never filtered away.
  Accepted readings (in range, not a spike) enter the window; stuck or offline faults do not stop that.
- **offline** (:meth:`QualityEngine.tick`, by the wall clock, even when nothing arrives): no
  reading for more than ``offline_after_periods * period_s`` (strictly more). A sensor never seen
  since this engine started counts from ``started_ms``, as does one whose saved ``last_seen_ms`` is
  older (after a restart the backlog in Kafka may still hold its readings: a grace of one offline
  interval instead of a flood of false offline faults). The fault's ``ts`` is the moment the
  silence passed the limit, ``last_seen_ms + offline_ms``, not the tick that noticed it
  (``detected_at``): a fault found again after a crash that lost the state write (the event was
  sent, the state was not saved) has the same ts, so the same equipment-fault episode id, and the
  alerts store takes it as the same event. The next reading ends the fault.

A sensor in any fault has all its readings quarantined. One health event per change of a check's
state (``fault``/``ok``) and one per spike; within one reading, new faults come before cleared ones,
so a sensor that goes from offline straight to stuck never looks healthy in between.
``detail["active"]`` lists the checks in fault right after the event; ``detail["episode_ts"]`` is
the ts at which the sensor's current fault episode (any check) began.

State per sensor: 64 bytes (:data:`STATE_BYTES_PER_SENSOR`), plus 8 bytes per window slot for
sensors with the spike check on (``spike_window`` 5..32: 40..256 bytes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.models import Config
from formats.warning import WarningEvent, episode_id
from rules.kernels_quality import quality_loop
from rules.rows import by_sensor_time, zeros

__all__ = ["CHECKS", "FAULT_RULE", "STATE_BYTES_PER_SENSOR", "QualityEngine", "QualityState",
           "QualityTable", "fault_warnings"]

#: Fault checks, in the order of their bits (1, 2, 4) and of their events within one reading.
CHECKS: tuple[str, ...] = ("offline", "stuck", "out_of_range")
OFFLINE, STUCK, OUT_OF_RANGE = 1, 2, 4
FAULT_RULE = "equipment_fault"
NONE = -1


def _i64(a: object) -> np.ndarray:
    return np.asarray(a, dtype=np.int64)


@dataclass(frozen=True)
class QualityTable:
    """Compiled checks: one row per sensor, dense arrays indexed by the sensor index."""

    site: list[str]
    sensor: list[str]
    unit: list[str]
    quantity: list[str]
    sensor_index: dict[tuple[str, str], int]
    period_ms: np.ndarray  # (n,) int64 expected reporting period
    offline_ms: np.ndarray  # (n,) int64 silence longer than this is offline
    lo: np.ndarray  # (n,) float64 physical range, -inf when none
    hi: np.ndarray  # (n,) float64 physical range, +inf when none
    stuck_samples: np.ndarray  # (n,) int32, 0 = off
    spike_mad: np.ndarray  # (n,) float64, 0 = off
    spike_window: np.ndarray  # (n,) int16 readings in the spike window, 0 when spike is off
    mad_floor: np.ndarray  # (n,) float64 sensor unit; 0 = relative floor 1e-3 * max(1, |median|)
    spike_row: np.ndarray  # (n,) int64 row of the window buffer, -1 when spike is off
    sensors_of_site: dict[str, np.ndarray]

    @classmethod
    def from_config(cls, config: Config) -> QualityTable:
        site, sensor, unit, quantity = [], [], [], []
        cols: dict[str, list[float]] = {k: [] for k in ("period", "offline", "lo", "hi", "stuck",
                                                        "mad", "win", "floor", "row")}
        of_site: dict[str, list[int]] = {}
        n_spike = 0
        for s in config.sites:
            for x in s.sensors:
                of_site.setdefault(s.id, []).append(len(site))
                site.append(s.id)
                sensor.append(x.id)
                unit.append(x.unit)
                quantity.append(x.quantity)
                q = x.quality
                lo, hi = x.range if x.range is not None else (-np.inf, np.inf)
                on = q.spike_mad is not None
                for k, val in (("period", round(x.period_s * 1000)),
                               ("offline", round(q.offline_after_periods * x.period_s * 1000)),
                               ("lo", lo), ("hi", hi), ("stuck", q.stuck_samples or 0),
                               ("mad", q.spike_mad or 0.0), ("win", q.spike_window if on else 0),
                               ("floor", 0.01 * (hi - lo) if x.range is not None else 0.0),
                               ("row", n_spike if on else -1)):
                    cols[k].append(val)
                n_spike += on
        return cls(
            site=site, sensor=sensor, unit=unit, quantity=quantity,
            sensor_index={(a, b): i for i, (a, b) in enumerate(zip(site, sensor))},
            period_ms=_i64(cols["period"]), offline_ms=_i64(cols["offline"]),
            lo=np.asarray(cols["lo"], dtype=np.float64), hi=np.asarray(cols["hi"], dtype=np.float64),
            stuck_samples=np.asarray(cols["stuck"], dtype=np.int32),
            spike_mad=np.asarray(cols["mad"], dtype=np.float64),
            spike_window=np.asarray(cols["win"], dtype=np.int16),
            mad_floor=np.asarray(cols["floor"], dtype=np.float64), spike_row=_i64(cols["row"]),
            sensors_of_site={k: _i64(v) for k, v in of_site.items()},
        )

    def __len__(self) -> int:
        return len(self.site)

    @property
    def n_spike(self) -> int:
        return int((self.spike_row >= 0).sum())


@dataclass
class QualityState:
    """Per-sensor state, preallocated (bytes per sensor in brackets; 64 in all)."""

    faults: np.ndarray  # (n,) uint8 bits OFFLINE | STUCK | OUT_OF_RANGE [1]
    run: np.ndarray  # (n,) int32 consecutive equal values, capped at stuck_samples [4]
    last_ts: np.ndarray  # (n,) int64 event time of the last fresh reading, -1 before one [8]
    last_seen_ms: np.ndarray  # (n,) int64 wall clock when it arrived (started_ms before one) [8]
    last_v: np.ndarray  # (n,) float64 value of the last fresh reading, nan before one [8]
    since: np.ndarray  # (n, 3) int64 ts each check entered fault, -1 when not in fault [24]
    episode_ts: np.ndarray  # (n,) int64 ts the current fault episode began, -1 when healthy [8]
    outlier: np.ndarray  # (n,) int8 side (-1/+1) of the previous reading's outlier, 0 if none [1]
    win_count: np.ndarray  # (n,) uint8 accepted readings in the window, up to spike_window [1]
    win_head: np.ndarray  # (n,) uint8 next slot of the window ring [1]
    window: np.ndarray = field(repr=False)  # (n_spike, max window) float64 ring buffers

    @classmethod
    def empty(cls, table: QualityTable, started_ms: int) -> QualityState:
        n = len(table)
        return cls(
            faults=zeros(n, np.uint8), run=zeros(n, np.int32), last_ts=np.full(n, NONE, np.int64),
            last_seen_ms=np.full(n, started_ms, np.int64), last_v=np.full(n, np.nan),
            since=np.full((n, len(CHECKS)), NONE, np.int64), episode_ts=np.full(n, NONE, np.int64),
            outlier=zeros(n, np.int8), win_count=zeros(n, np.uint8), win_head=zeros(n, np.uint8),
            window=zeros((table.n_spike, int(table.spike_window.max(initial=0))), np.float64),
        )


#: Bytes of state per sensor, excluding the spike window buffer.
STATE_BYTES_PER_SENSOR = 1 + 4 + 8 + 8 + 8 + 8 * len(CHECKS) + 8 + 1 + 1 + 1


def _num(x: float) -> float | None:
    """A float for JSON: None for nan and infinities."""
    return float(x) if math.isfinite(x) else None


class QualityEngine:
    """Runs the checks over micro-batches and the wall clock, updating :class:`QualityState` in place."""

    def __init__(self, table: QualityTable, *, started_ms: int, state: QualityState | None = None) -> None:
        self.table = table
        self.started_ms = int(started_ms)
        self.state = state if state is not None else QualityState.empty(table, self.started_ms)
        self.ignored_stale = 0  # readings not newer than the sensor's last one

    # -- readings -------------------------------------------------------------------------------
    def process(self, sensor_idx: np.ndarray, ts: np.ndarray, v: np.ndarray,
                now_ms: int | np.ndarray, *, ordered: bool = False) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Check readings (dense sensor index, ts epoch ms, value in the sensor's unit).

        ``now_ms`` is the wall clock (epoch ms) at arrival: one value, or one per reading (replay
        passes the readings' own ts so that its output does not depend on the batch size).
        Returns the quarantine mask (True: do not evaluate against thresholds), in input order,
        and the health events sorted by (ts, sensor index). Readings may come in any order; each
        sensor's are checked in ts order (``ordered``: the caller guarantees they already are).
        """
        idx, ts, val = _i64(sensor_idx), _i64(ts), np.asarray(v, dtype=np.float64)
        now = _i64(now_ms).reshape(-1)
        quarantined = np.ones(len(idx), dtype=bool)
        order = None if ordered else by_sensor_time(idx, ts)
        if order is not None:
            idx, ts, val = idx[order], ts[order], val[order]
            now = now[order] if len(now) > 1 else now
        st, tb = self.state, self.table
        stale, changes, stats = quality_loop(
            idx, ts, val, now, tb.lo, tb.hi, tb.stuck_samples, tb.spike_row, tb.spike_window, tb.spike_mad,
            tb.mad_floor, st.faults, st.run, st.last_ts, st.last_seen_ms, st.last_v, st.outlier, st.win_count,
            st.win_head, st.window, quarantined)
        self.ignored_stale += int(stale)
        if order is not None:
            quarantined[order] = quarantined.copy()
        found: list[tuple[int, int, dict[str, Any]]] = []
        for (i, before, after, spike), (med, mad, limit) in zip(changes.tolist(), stats.tolist()):
            row, t, at, value = int(idx[i]), int(ts[i]), int(now[i] if len(now) > 1 else now[0]), float(val[i])
            for e in self._transition(row, before, after, t, at, value):
                found.append((t, row, e))
            if spike:
                found.append((t, row, self._event(row, "spike", "spike", t, at, value,
                                                  {"median": _num(med), "mad": _num(mad), "limit": _num(limit)})))
        found.sort(key=lambda e: (e[0], e[1]))  # stable: a reading's events keep their order
        return quarantined, [e for _, _, e in found]

    # -- wall clock -----------------------------------------------------------------------------
    def tick(self, now_ms: int, sensors: Iterable[int] | None = None) -> list[dict[str, Any]]:
        """Offline detection by the wall clock (epoch ms): one ``offline`` fault per silent sensor.

        ``sensors`` restricts the check to these dense indices (the sites this worker owns,
        less sensors inside a maintenance window); by default every sensor.
        """
        st, tb = self.state, self.table
        rows = np.arange(len(tb)) if sensors is None else _i64(list(sensors))
        seen = np.maximum(st.last_seen_ms[rows], self.started_ms)  # the restart grace
        silent = rows[((st.faults[rows] & OFFLINE) == 0) & (now_ms - seen > tb.offline_ms[rows])]
        out: list[dict[str, Any]] = []
        for row in map(int, silent):
            b = int(st.faults[row])
            # stamped when the silence passed the limit, not when it was noticed: found again after
            # a restart, the fault has the same ts, so the same episode id (module docstring)
            ts = int(st.last_seen_ms[row] + tb.offline_ms[row])
            out.extend(self._transition(row, b, b | OFFLINE, ts, int(now_ms), None))
            st.faults[row] = b | OFFLINE
        return out

    # -- events ---------------------------------------------------------------------------------
    def _transition(self, row: int, before: int, after: int, ts: int, now: int,
                    value: float | None) -> list[dict[str, Any]]:
        """Events for one sensor's fault bits going from ``before`` to ``after``; updates since/episode."""
        st, tb = self.state, self.table
        if before == 0 and after != 0:
            st.episode_ts[row] = ts
        episode, active, out = int(st.episode_ts[row]), before, []
        for entering in (True, False):  # new faults first: the episode never looks healthy in between
            for k, check in enumerate(CHECKS):
                bit = 1 << k
                if not (after ^ before) & bit or bool(after & bit) != entering:
                    continue
                active ^= bit
                detail: dict[str, Any] = {"active": [c for j, c in enumerate(CHECKS) if active >> j & 1],
                                          "episode_ts": episode}
                if entering:
                    st.since[row, k] = ts
                else:
                    detail["since"] = int(st.since[row, k])
                    st.since[row, k] = NONE
                if check == "offline" and entering:
                    detail.update(offline_ms=int(tb.offline_ms[row]), last_seen_ms=int(st.last_seen_ms[row]),
                                  last_ts=None if st.last_ts[row] < 0 else int(st.last_ts[row]),
                                  last_value=_num(st.last_v[row]))
                elif check == "stuck":
                    detail["samples"] = int(tb.stuck_samples[row])
                elif check == "out_of_range":
                    detail["range"] = [_num(tb.lo[row]), _num(tb.hi[row])]
                out.append(self._event(row, check, "fault" if entering else "ok", ts, now, value, detail))
        if after == 0:
            st.episode_ts[row] = NONE
        return out

    def _event(self, row: int, check: str, state: str, ts: int, now: int, value: float | None,
               detail: dict[str, Any]) -> dict[str, Any]:
        site, sensor = self.table.site[row], self.table.sensor[row]
        return {"site": site, "subject": f"{site}/{sensor}", "sensor": sensor, "check": check, "state": state,
                "ts": ts, "detected_at": now, "value": None if value is None else _num(value), "detail": detail}

    # -- state ----------------------------------------------------------------------------------
    def export_site(self, site: str) -> dict[str, list[Any]]:
        """One site's state as JSON-able lists: ``{sensor: [faults, run, last_ts, last_seen_ms,
        last_v, since x3, episode_ts, outlier, [window values, oldest first]]}``."""
        st, tb = self.state, self.table
        rows = np.asarray(tb.sensors_of_site.get(site, ()), dtype=np.int64)
        out: dict[str, list[Any]] = {}
        if len(rows) == 0:
            return out
        # whole columns at once (.tolist() gives Python ints and floats), then one list per sensor
        cols = zip(rows.tolist(), st.faults[rows].tolist(), st.run[rows].tolist(), st.last_ts[rows].tolist(),
                   st.last_seen_ms[rows].tolist(), st.last_v[rows].tolist(), st.since[rows].tolist(),
                   st.episode_ts[rows].tolist(), st.outlier[rows].tolist(), tb.spike_row[rows].tolist())
        for row, faults, run, last_ts, seen, last_v, since, episode_ts, outlier, spike_row in cols:
            window: list[float] = []
            if spike_row >= 0:
                w, n, head = int(tb.spike_window[row]), int(st.win_count[row]), int(st.win_head[row])
                window = st.window[spike_row, (head - n + np.arange(n)) % w].tolist()
            out[tb.sensor[row]] = [faults, run, last_ts, seen, _num(last_v), *since, episode_ts, outlier, window]
        return out

    def import_site(self, site: str, saved: Mapping[str, Sequence[Any]]) -> None:
        """Replace the site's state with ``saved`` (missing sensors start fresh; unknown ones are
        ignored). ``last_seen_ms`` is kept as saved; offline counts from ``started_ms`` at the earliest
        (the restart grace, module docstring);
        a window saved under a larger ``spike_window`` keeps its newest values."""
        st, tb = self.state, self.table
        for row in map(int, tb.sensors_of_site.get(site, ())):
            s = saved.get(tb.sensor[row])
            fa, run, last_ts, seen, last_v, *since, ep, outlier, window = (
                s if s is not None else [0, 0, NONE, self.started_ms, None, *[NONE] * len(CHECKS), NONE, 0, []])
            st.faults[row], st.run[row], st.last_ts[row] = fa, run, last_ts
            st.last_seen_ms[row] = seen
            st.last_v[row] = np.nan if last_v is None else last_v
            st.since[row], st.episode_ts[row], st.outlier[row] = since, ep, outlier
            w = int(tb.spike_window[row])
            kept = list(window)[-w:] if tb.spike_row[row] >= 0 else []
            if kept:
                st.window[tb.spike_row[row], : len(kept)] = kept
            st.win_count[row], st.win_head[row] = len(kept), len(kept) % w if w else 0


def fault_warnings(events: Iterable[Mapping[str, Any]], config: Config) -> list[WarningEvent]:
    """Equipment-fault warnings for officers: one yellow episode per sensor fault episode.

    The episode opens with the first check to fail (``raised``) and ends when no check is in fault
    any more (``cleared``); checks that come and go in between change nothing. Its id is
    ``episode_id(subject, "equipment_fault", episode_ts)``, so both ends agree without state.
    ``value`` is the reading (or, for offline, the last one before the silence; 0 if none).
    """
    out: list[WarningEvent] = []
    for e in events:
        d = e.get("detail", {})
        opens = e["state"] == "fault" and d.get("active") == [e["check"]]
        closes = e["state"] == "ok" and not d.get("active")
        if not (opens or closes):
            continue
        sensor = config.sensor(e["site"], e["sensor"])
        value = e["value"] if e["value"] is not None else d.get("last_value")
        out.append(WarningEvent(
            episode=episode_id(e["subject"], FAULT_RULE, int(d["episode_ts"])), site=e["site"],
            subject=e["subject"], rule=FAULT_RULE, kind="raised" if opens else "cleared",
            level="yellow" if opens else "normal", previous="normal" if opens else "yellow",
            ts=int(e["ts"]), emitted_at=int(e["detected_at"]), value=float(value or 0.0), threshold=None,
            unit=sensor.unit if sensor is not None else "",
            detail={"check": e["check"], "quantity": sensor.quantity if sensor is not None else None,
                    "raised_ts": int(d["episode_ts"])},
        ))
    return out
