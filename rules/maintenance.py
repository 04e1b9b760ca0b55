"""Maintenance and calibration windows inside the rule engine.

A window covers event time ``[start, end)`` of a whole site or some of its sensors. It comes from
one of two places:

- **static**: ``sites.yaml`` (``maintenance:`` of a site), read at start; window key ``SITE#i``;
- **runtime**: a maintenance silence created by ``hazwatch silences add --maintenance`` or the
  console, published on Kafka ``hazwatch.maintenance`` (``formats.maintenance.RuntimeWindow``, one JSON record
  per change, keyed by site id) and handed to the engine per site
  (:meth:`MaintenanceTable.set_site`); window key ``SITE#silence-ID``. Ending the silence early
  publishes the same record with ``ended: true`` and ``end_ms`` = the time it was ended.

A reading inside one is *not evaluated* by any rule: it raises nothing and clears nothing (a
warning open before the window stays open until a reading after it decides). The first such
reading of each sensor and window gives one health event (``check: maintenance``, ``state:
start``) that says why, with the window's kind, reason and end. While a window is open by the wall
clock the sensor is not reported offline, and the silence that makes a sensor offline is counted
from the window's end.

Windows are few (a handful per site), so each is one vectorised mask over the readings of the
sensors that have a window at all (none: nothing is computed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.models import Config
from formats.maintenance import RuntimeWindow

__all__ = ["MaintenanceTable", "fold_windows", "upsert_window"]

def upsert_window(windows: Sequence[Mapping[str, Any]], record: Mapping[str, Any], *,
                  now_ms: int | None = None, retain_ms: int | None = None) -> list[dict[str, Any]]:
    """A site's runtime windows (records) with ``record`` put in: it replaces the record of the
    same id (a later record of a silence -- ended -- wins), order by start then id. With
    ``now_ms`` and ``retain_ms``: windows that ended more than ``retain_ms`` before ``now_ms`` are
    dropped (no reading that old is accepted any more). Pure; the worker's table holds the result."""
    new = RuntimeWindow.from_record(record).to_record()
    out = [dict(w) for w in windows if w.get("id") != new["id"]] + [new]
    if now_ms is not None and retain_ms is not None:
        out = [w for w in out if w["end_ms"] >= now_ms - retain_ms]
    return sorted(out, key=lambda w: (w["start_ms"], str(w["id"])))


def fold_windows(records: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Site -> runtime windows after applying ``records`` in order (``hazwatch replay --maintenance``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        w = RuntimeWindow.from_record(rec)
        out[w.site] = upsert_window(out.get(w.site, []), rec)
    return out


# (dense sensor index, start ms, end ms, window key, kind, reason)
_Entry = tuple[int, int, int, str, str, str]


@dataclass
class MaintenanceTable:
    sensor: np.ndarray  # (w,) int64 dense sensor index, one entry per (window, sensor)
    start: np.ndarray  # (w,) int64 ms
    end: np.ndarray  # (w,) int64 ms
    window: list[str]  # (w,) the window's key "SITE#i" or "SITE#silence-ID"
    kind: list[str]
    reason: list[str]
    announced: set[tuple[int, str]] = field(default_factory=set)
    """(sensor, window) pairs whose ``start`` event was given and whose ``end`` event was not."""
    static: dict[str, list[_Entry]] = field(default_factory=dict)
    """Site -> entries from the configuration."""
    runtime: dict[str, list[_Entry]] = field(default_factory=dict)
    """Site -> entries of its runtime windows (:meth:`set_site`)."""
    _given: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    """Site -> the windows last given to :meth:`set_site` (an unchanged list rebuilds nothing)."""
    _has: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool), repr=False)
    """Dense sensor index -> whether any window covers it."""

    @classmethod
    def from_config(cls, config: Config, sensor_index: dict[tuple[str, str], int]) -> MaintenanceTable:
        static: dict[str, list[_Entry]] = {}
        for site in config.sites:
            for i, w in enumerate(site.maintenance):
                for sid in w.sensors or [s.id for s in site.sensors]:
                    static.setdefault(site.id, []).append(
                        (sensor_index[(site.id, sid)], w.start_ms, w.end_ms, f"{site.id}#{i}", w.kind, w.reason))
        table = cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64), [], [], [], static=static)
        table._rebuild(n_sensors=len(sensor_index))
        return table

    def _rebuild(self, n_sensors: int | None = None) -> None:
        entries = [e for part in (self.static, self.runtime) for site in sorted(part) for e in part[site]]
        cols = list(zip(*entries, strict=True)) if entries else [(), (), (), (), (), ()]
        self.sensor, self.start, self.end = (np.asarray(c, dtype=np.int64) for c in cols[:3])
        self.window, self.kind, self.reason = list(cols[3]), list(cols[4]), list(cols[5])
        n = max(n_sensors or 0, len(self._has), int(self.sensor.max()) + 1 if entries else 0)
        self._has = np.zeros(n, dtype=bool)
        self._has[self.sensor] = True

    def set_site(self, site: str, windows: Sequence[RuntimeWindow | Mapping[str, Any]],
                 sensors: Mapping[str, int]) -> None:
        """Replace the runtime windows of ``site`` (records or :class:`RuntimeWindow`), merged with
        its static ones. ``sensors``: the site's sensor id -> dense index; a sensor the
        configuration does not know is left out, an empty window (ended before it began) too."""
        given = list(windows)
        if self._given.get(site, []) == given:
            return
        self._given[site] = given
        entries: list[_Entry] = []
        for w in given:
            rw = w if isinstance(w, RuntimeWindow) else RuntimeWindow.from_record(w)
            if rw.site != site or rw.end_ms <= rw.start_ms:
                continue
            for sid in rw.sensors or list(sensors):
                if sid in sensors:
                    entries.append((sensors[sid], rw.start_ms, rw.end_ms, rw.key, rw.kind, rw.reason))
        if entries or self.runtime.pop(site, None) is not None:
            if entries:
                self.runtime[site] = entries
            self._rebuild()

    def __bool__(self) -> bool:
        return len(self.sensor) > 0

    def inside(self, idx: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Per reading, the entry of the window it lies in, or -1."""
        out = np.full(len(idx), -1, dtype=np.int64)
        cand = np.flatnonzero(self._has[np.clip(idx, 0, len(self._has) - 1)] & (idx >= 0)) if len(self._has) else []
        if len(cand) == 0:  # no reading of a sensor with a window
            return out
        ci, ct = idx[cand], ts[cand]
        found = np.full(len(cand), -1, dtype=np.int64)
        for w in range(len(self.sensor)):
            m = (ci == self.sensor[w]) & (ct >= self.start[w]) & (ct < self.end[w]) & (found < 0)
            found[m] = w
        out[cand] = found
        return out

    def open_at(self, now_ms: int, grace_ms: np.ndarray) -> dict[int, int]:
        """Sensors whose window is open at ``now_ms`` or ended less than their offline grace ago
        -> the time their silence counts from (``now_ms`` while open, else the window's end)."""
        out: dict[int, int] = {}
        for w in range(len(self.sensor)):
            s = int(self.sensor[w])
            if self.start[w] <= now_ms < self.end[w]:
                out[s] = now_ms
            elif self.end[w] <= now_ms < self.end[w] + grace_ms[s]:
                out[s] = max(out.get(s, 0), int(self.end[w]))
        return out

    def announce(self, entries: np.ndarray, readings: np.ndarray, sites: list[str], sensors: list[str],
                 ts: np.ndarray, v: np.ndarray, now_ms: int) -> list[dict[str, Any]]:
        """Health events for the first reading of each (sensor, window) among ``readings``."""
        out: list[dict[str, Any]] = []
        for i in readings[np.argsort(ts[readings], kind="stable")]:
            w = int(entries[i])
            key = (int(self.sensor[w]), self.window[w])
            if key in self.announced:
                continue
            self.announced.add(key)
            out.append({"site": sites[i], "subject": f"{sites[i]}/{sensors[i]}", "sensor": sensors[i],
                        "check": "maintenance", "state": "start", "ts": int(ts[i]), "detected_at": now_ms,
                        "value": float(v[i]),
                        "detail": {"kind": self.kind[w], "reason": self.reason[w], "window": self.window[w],
                                   "start": int(self.start[w]), "end": int(self.end[w]),
                                   "note": "readings inside the window raise and clear nothing"}})
        return out

    def conclude(self, readings: np.ndarray, idx: np.ndarray, sites: list[str], sensors: list[str],
                 ts: np.ndarray, v: np.ndarray, now_ms: int) -> list[dict[str, Any]]:
        """Health events (``state: end``) at the first reading after an announced window is over;
        ``readings``: positions of readings outside every window. The window is then forgotten."""
        open_by_sensor: dict[int, list[str]] = {}
        for s, w in self.announced:
            open_by_sensor.setdefault(s, []).append(w)
        ends = {w: (int(e), k, r) for w, e, k, r in zip(self.window, self.end.tolist(), self.kind, self.reason)}
        out: list[dict[str, Any]] = []
        for i in readings[np.argsort(ts[readings], kind="stable")]:
            s = int(idx[i])
            for w in sorted(open_by_sensor.get(s, ())):
                end, kind, reason = ends.get(w, (int(ts[i]), "maintenance", ""))  # gone: over
                if ts[i] < end or (s, w) not in self.announced:
                    continue
                self.announced.discard((s, w))
                out.append({"site": sites[i], "subject": f"{sites[i]}/{sensors[i]}", "sensor": sensors[i],
                            "check": "maintenance", "state": "end", "ts": int(ts[i]), "detected_at": now_ms,
                            "value": float(v[i]),
                            "detail": {"kind": kind, "reason": reason, "window": w, "end": end,
                                       "note": "readings are evaluated again"}})
        return out

    def export_site(self, site: str, sensor_names: dict[int, str]) -> list[list[str]]:
        return sorted([sensor_names[s], w] for s, w in self.announced if w.startswith(f"{site}#"))

    def import_site(self, site: str, saved: list[list[str]], sensor_index: dict[tuple[str, str], int]) -> None:
        self.announced = {k for k in self.announced if not k[1].startswith(f"{site}#")}
        for name, w in saved:
            if (site, name) in sensor_index:
                self.announced.add((sensor_index[(site, name)], w))
