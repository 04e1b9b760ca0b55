"""Trend rings: per sensor, the minimum and maximum reading of each time bucket of the last
``history`` (docs/CONSOLE.md, "per-sensor cost"). Pure and not thread-safe: the caller
(:class:`console.live.LiveState`) holds its lock.

A sensor's ring is allocated on its first reading, as one row of 2-D arrays that grow by an
eighth, so sensors that never report cost nothing here. Bucket ``b = ts // width`` lives in slot
``b % buckets`` of the row; a slot holds its bucket number (int32), the times of its minimum and
maximum as whole seconds into the bucket (uint16; trend times are whole seconds) and the two
values (float32): 16 bytes a slot, 11.25 KiB a sensor over 24 h (720 slots of 120 s; never more
than 768 slots, 12 KiB).
"""

from __future__ import annotations

import numpy as np

__all__ = ["SLOT_BYTES", "TrendRings"]

SLOT_BYTES = 4 + 2 + 2 + 4 + 4


def _layout(history_ms: int, buckets: int) -> tuple[int, int]:
    """(slots, bucket width in ms): at most ``buckets`` slots of whole seconds (so a time kept as
    seconds into its bucket is the reading's own second) that cover ``history_ms`` exactly when
    it is a whole number of seconds (24 h: 720 slots of 120 s)."""
    seconds = max(1, -(-history_ms // 1000))
    width = -(-seconds // buckets)
    if history_ms % 1000 == 0:
        width = next(w for w in range(width, seconds + 1) if seconds % w == 0)
    return -(-seconds // width), width * 1000


class TrendRings:
    """Rings of at most ``buckets`` slots covering ``history_ms`` for ``sensors`` sensors (dense
    indices)."""

    def __init__(self, sensors: int, history_ms: int, buckets: int = 768) -> None:
        self.nb, self.width_ms = _layout(history_ms, buckets)
        if self.width_ms > np.iinfo(np.uint16).max * 1000:
            raise ValueError(f"{buckets} buckets over {history_ms} ms: buckets too wide")
        self.row_of = np.full(sensors, -1, dtype=np.int64)
        """Sensor -> its row in the arrays below; -1 before its first reading."""
        self.rows = 0
        self.bucket = np.empty((0, self.nb), dtype=np.int32)
        self.tmin = np.empty((0, self.nb), dtype=np.uint16)
        self.tmax = np.empty((0, self.nb), dtype=np.uint16)
        self.vmin = np.empty((0, self.nb), dtype=np.float32)
        self.vmax = np.empty((0, self.nb), dtype=np.float32)

    def _allocate(self, idx: np.ndarray) -> None:
        new = np.unique(idx[self.row_of[idx] < 0])
        if not len(new):
            return
        need = self.rows + len(new)
        if need > len(self.bucket):
            cap = max(need, len(self.bucket) + max(16, len(self.bucket) // 8))
            grown = []
            for arr, fill in ((self.bucket, -1), (self.tmin, 0), (self.tmax, 0),
                              (self.vmin, np.inf), (self.vmax, -np.inf)):
                bigger = np.full((cap, self.nb), fill, dtype=arr.dtype)
                bigger[:self.rows] = arr[:self.rows]
                grown.append(bigger)
            self.bucket, self.tmin, self.tmax, self.vmin, self.vmax = grown
        self.row_of[new] = np.arange(self.rows, need)
        self.rows = need

    def add(self, idx: np.ndarray, ts: np.ndarray, v: np.ndarray) -> None:
        """Readings ``v`` at ``ts`` (epoch ms) of sensors ``idx`` (any order, any batch size:
        the result does not depend on how readings are batched)."""
        if not len(idx):
            return
        self._allocate(idx)
        b = ts // self.width_ms
        off = ((ts - b * self.width_ms) // 1000).astype(np.uint16)  # seconds into the bucket
        b32 = b.astype(np.int32)
        x = v.astype(np.float32)  # compared as stored, so batches cannot disagree on ties
        flat = self.row_of[idx] * self.nb + b % self.nb
        bucket, vmin, vmax = self.bucket.reshape(-1), self.vmin.reshape(-1), self.vmax.reshape(-1)
        tmin, tmax = self.tmin.reshape(-1), self.tmax.reshape(-1)
        before = bucket[flat].copy()
        np.maximum.at(bucket, flat, b32)  # a slot moves on to the newest bucket mapped onto it
        moved = flat[bucket[flat] != before]
        vmin[moved], vmax[moved] = np.inf, -np.inf
        keep = b32 == bucket[flat]  # readings of a bucket already overwritten are too old
        f, t, x = flat[keep], off[keep], x[keep]
        if not len(f):
            return
        for sign, tv, vv in ((1, tmin, vmin), (-1, tmax, vmax)):
            o = np.lexsort((sign * x, f))
            fs = f[o]
            first = np.r_[True, fs[1:] != fs[:-1]]
            cf, ct, cv = fs[first], t[o][first], x[o][first]
            better = sign * cv < sign * vv[cf]
            vv[cf[better]], tv[cf[better]] = cv[better], ct[better]

    def points(self, sensor: int, since_ms: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the (times in ms, float32 values) of the sensor's bucket minima and maxima
        from buckets since ``since_ms``, unsorted, empty slots included (values not finite)."""
        row = int(self.row_of[sensor])
        if row < 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        bk = self.bucket[row].astype(np.int64)
        sel = bk >= since_ms // self.width_ms
        start = bk[sel] * self.width_ms
        t = np.concatenate([start + self.tmin[row][sel].astype(np.int64) * 1000,
                            start + self.tmax[row][sel].astype(np.int64) * 1000])
        v = np.concatenate([self.vmin[row][sel], self.vmax[row][sel]])
        return t, v

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.bucket, self.tmin, self.tmax, self.vmin, self.vmax))
