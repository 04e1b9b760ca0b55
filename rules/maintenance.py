"""Maintenance and calibration windows inside the rule engine.

A window (``sites.yaml``: ``maintenance:`` of a site, for the whole site or some sensors) covers
event time ``[start, end)``. A reading inside one is *not evaluated* by any rule: it raises
nothing and clears nothing (a warning open before the window stays open until a reading after
it decides). The first such reading of each sensor and window gives one health event
(``check: maintenance``, ``state: start``) that says why, with the window's kind, reason and end.
While a window is open by the wall clock the sensor is not reported offline, and the silence
that makes a sensor offline is counted from the window's end.

Windows are few (a handful per site), so each is one vectorised mask over the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from config.models import Config

__all__ = ["MaintenanceTable"]


@dataclass
class MaintenanceTable:
    sensor: np.ndarray  # (w,) int64 dense sensor index, one entry per (window, sensor)
    start: np.ndarray  # (w,) int64 ms
    end: np.ndarray  # (w,) int64 ms
    window: list[str]  # (w,) the window's key "SITE#i"
    kind: list[str]
    reason: list[str]
    announced: set[tuple[int, str]] = field(default_factory=set)
    """(sensor, window) pairs whose health event was given."""

    @classmethod
    def from_config(cls, config: Config, sensor_index: dict[tuple[str, str], int]) -> MaintenanceTable:
        sensor, start, end, window, kind, reason = [], [], [], [], [], []
        for site in config.sites:
            for i, w in enumerate(site.maintenance):
                for sid in w.sensors or [s.id for s in site.sensors]:
                    sensor.append(sensor_index[(site.id, sid)])
                    start.append(w.start_ms)
                    end.append(w.end_ms)
                    window.append(f"{site.id}#{i}")
                    kind.append(w.kind)
                    reason.append(w.reason)
        return cls(np.asarray(sensor, np.int64), np.asarray(start, np.int64), np.asarray(end, np.int64),
                   window, kind, reason)

    def __bool__(self) -> bool:
        return len(self.sensor) > 0

    def inside(self, idx: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """Per reading, the entry of the window it lies in, or -1."""
        out = np.full(len(idx), -1, dtype=np.int64)
        for w in range(len(self.sensor)):
            m = (idx == self.sensor[w]) & (ts >= self.start[w]) & (ts < self.end[w]) & (out < 0)
            out[m] = w
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

    def export_site(self, site: str, sensor_names: dict[int, str]) -> list[list[str]]:
        return sorted([sensor_names[s], w] for s, w in self.announced if w.startswith(f"{site}#"))

    def import_site(self, site: str, saved: list[list[str]], sensor_index: dict[tuple[str, str], int]) -> None:
        self.announced = {k for k in self.announced if not k[1].startswith(f"{site}#")}
        for name, w in saved:
            if (site, name) in sensor_index:
                self.announced.add((sensor_index[(site, name)], w))
