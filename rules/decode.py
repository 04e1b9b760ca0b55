"""Decoding ``hazwatch.readings`` records for the rules worker: each once (formats/readings.py),
the bad ones set aside."""

from __future__ import annotations

from collections.abc import Iterable

from formats.readings import Readings, ReadingsError, decode as decode_record
from rules.engine import Batch

__all__ = ["decode"]


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
