"""The rules engine's input: :class:`Batch`, readings as columns, any number of sites; and
:func:`decode`, ``hazwatch.readings`` records into one batch, each decoded once
(formats/readings.py), the bad ones set aside."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from formats.readings import Readings, ReadingsError
from formats.readings import decode as decode_record

__all__ = ["Batch", "decode"]


@dataclass
class Batch:
    """Columnar readings: one entry per reading, any number of sites."""

    site: Sequence[str]
    sensor: Sequence[str]
    ts: np.ndarray  # int64 epoch ms
    v: np.ndarray  # float64
    q: np.ndarray  # int64 quality, 0 = good
    idx: np.ndarray | None = field(default=None, kw_only=True)
    """Dense sensor indices from ingest (``Config.sensor_index``), if every message carried them."""
    cfg: str = field(default="", kw_only=True)
    """The configuration fingerprint those indices belong to."""

    @classmethod
    def from_readings(cls, records: Iterable[Readings]) -> Batch:
        """From decoded ``hazwatch.readings`` records (formats/readings.py), any number of sites."""
        site: list[str] = []
        sensor: list[str] = []
        ts: list[int] = []
        v: list[float] = []
        q: list[int] = []
        idx: list[int] | None = []
        cfgs: set[str] = set()
        for r in records:
            n = len(r.ts)
            site.extend([r.site] * n)
            sensor.extend(r.sensor)
            ts.extend(r.ts)
            v.extend(r.v)
            q.extend(r.q)
            if idx is not None and len(r.i) == n:
                idx.extend(r.i)
                cfgs.add(r.cfg)
            else:
                idx = None  # one record without indices (an older ingest): look every reading up
        dense = np.asarray(idx, dtype=np.int64) if idx is not None and len(cfgs) == 1 else None
        return cls(site, sensor, np.asarray(ts, dtype=np.int64), np.asarray(v, dtype=np.float64),
                   np.asarray(q, dtype=np.int64), idx=dense, cfg=cfgs.pop() if dense is not None else "")

    def __len__(self) -> int:
        return len(self.ts)



def decode(values: Iterable[bytes]) -> tuple[Batch, set[str], list[tuple[bytes, str]]]:
    """``hazwatch.readings`` values -> one columnar batch, its sites, and undecodable messages.

    Each message is decoded once and the batch built once; only when that fails is each record
    tried on its own, to set the bad ones aside."""
    good: list[tuple[bytes, Readings]] = []
    rejects: list[tuple[bytes, str]] = []
    for raw in values:
        try:
            good.append((raw, decode_record(raw)))
        except ReadingsError as exc:
            rejects.append((raw, f"undecodable readings message: {exc}"))
    try:
        return Batch.from_readings(r for _raw, r in good), {r.site for _raw, r in good}, rejects
    except Exception:  # noqa: BLE001, S110 - some column holds a wrong type: find it, keep the others
        pass
    kept: list[Readings] = []
    for raw, record in good:
        try:
            Batch.from_readings([record])  # converts the columns
            kept.append(record)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the batch
            rejects.append((raw, f"undecodable readings message: {exc!r}"))
    return Batch.from_readings(kept), {r.site for r in kept}, rejects
