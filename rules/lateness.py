"""Allowed lateness: a per-sensor reorder buffer in front of the rule stages.

For a sensor with ``allowed_lateness_s = L > 0`` (a gateway that forwards stored readings out of
order, say), a reading is held until the sensor's *watermark* -- the newest timestamp that has
arrived for it -- is at least ``L`` past it, and the held readings are then evaluated in timestamp
order. So readings that arrive in a different order within ``L`` give exactly the events the
ordered readings give. A reading older than ``watermark - L`` at its arrival is beyond the allowed
lateness: it is rejected with a reason (dead-lettered) and never evaluated. The same timestamp
again is a duplicate and is ignored.

The price is delay: a held reading decides nothing for up to ``L`` of event time (or, in the
stream, ``L`` of wall-clock time: ``release_due`` lets the worker's clock tick release readings
of a sensor that went quiet). The default is 0: no buffer, no delay; the engine's late policy
then rejects any reading older than one that arrived before it.

Every decision depends only on the arrival order, not on micro-batch boundaries: a reading that
passes the lateness check is newer than every reading already released, because a release needs
a watermark ``L`` past it and that watermark is part of the later reading's check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ReorderBuffer"]


class ReorderBuffer:
    def __init__(self, lateness_ms: np.ndarray) -> None:
        self.lateness_ms = lateness_ms  # (n_sensors,) int64, 0: no buffer
        self._active = bool(len(lateness_ms)) and int(lateness_ms.max()) > 0
        self.watermark = np.full(len(lateness_ms), -1, dtype=np.int64)
        self.released = np.full(len(lateness_ms), -1, dtype=np.int64)
        self.idx = np.empty(0, np.int64)
        self.ts = np.empty(0, np.int64)
        self.v = np.empty(0, np.float64)

    def __bool__(self) -> bool:
        return self._active

    def buffered(self, idx: np.ndarray) -> np.ndarray:
        """Mask: readings of sensors that have an allowed lateness."""
        return self.lateness_ms[idx] > 0

    def admit(self, idx: np.ndarray, ts: np.ndarray, v: np.ndarray, newest_before: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Take readings (in arrival order) of buffered sensors; ``newest_before[i]`` is the newest
        timestamp of reading i's sensor that arrived before it (watermark included).
        Returns (too_late mask, duplicate mask); the others are now held."""
        limit = self.lateness_ms[idx]
        too_late = (newest_before >= 0) & (ts < newest_before - limit)
        too_late |= ts < self.released[idx]  # released by the clock (stream only)
        ok = ~too_late
        # duplicates: the same (sensor, ts) released or held already, or twice in this batch
        dup = ok & (ts == self.released[idx])
        if ok.any():
            held = set(zip(self.idx.tolist(), self.ts.tolist()))
            for i in np.flatnonzero(ok):
                key = (int(idx[i]), int(ts[i]))
                if key in held:
                    dup[i] = True
                else:
                    held.add(key)
        take = ok & ~dup
        self.idx = np.r_[self.idx, idx[take]]
        self.ts = np.r_[self.ts, ts[take]]
        self.v = np.r_[self.v, v[take]]
        np.maximum.at(self.watermark, idx[take], ts[take])
        return too_late, dup

    def release(self, due: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Release the held readings at least the lateness behind their sensor's watermark (or
        ``due``, a mask over the held readings), ordered by (ts, sensor)."""
        if due is None:
            due = self.ts <= self.watermark[self.idx] - self.lateness_ms[self.idx]
        order = np.flatnonzero(due)
        order = order[np.lexsort((self.idx[order], self.ts[order]))]
        out = self.idx[order], self.ts[order], self.v[order]
        np.maximum.at(self.released, out[0], out[1])
        keep = ~due
        self.idx, self.ts, self.v = self.idx[keep], self.ts[keep], self.v[keep]
        return out

    def release_due(self, now_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """In the stream: release what has waited its lateness by the wall clock."""
        return self.release(self.ts + self.lateness_ms[self.idx] <= now_ms)

    def release_all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """At the end of a replay: everything held."""
        return self.release(np.ones(len(self.ts), dtype=bool))

    # -- state ----------------------------------------------------------------------------------
    def export_rows(self, rows: np.ndarray, names: dict[int, str]) -> dict[str, Any]:
        held = np.isin(self.idx, rows)
        return {
            "watermark": {names[int(r)]: int(self.watermark[r]) for r in rows if self.watermark[r] >= 0},
            "released": {names[int(r)]: int(self.released[r]) for r in rows if self.released[r] >= 0},
            "held": [[names[int(i)], int(t), float(x)] for i, t, x in zip(self.idx[held], self.ts[held], self.v[held])],
        }

    def import_rows(self, rows: np.ndarray, saved: dict[str, Any], index: dict[str, int]) -> None:
        self.watermark[rows] = -1
        self.released[rows] = -1
        keep = ~np.isin(self.idx, rows)
        self.idx, self.ts, self.v = self.idx[keep], self.ts[keep], self.v[keep]
        for name, t in saved.get("watermark", {}).items():
            if name in index:
                self.watermark[index[name]] = t
        for name, t in saved.get("released", {}).items():
            if name in index:
                self.released[index[name]] = t
        held = [(index[n], t, x) for n, t, x in saved.get("held", []) if n in index]
        if held:
            i, t, x = zip(*held)
            self.idx = np.r_[self.idx, np.asarray(i, np.int64)]
            self.ts = np.r_[self.ts, np.asarray(t, np.int64)]
            self.v = np.r_[self.v, np.asarray(x, np.float64)]
