"""Decoding ``hazwatch.readings`` records for the rules worker: each once, the bad ones set aside."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from rules.engine import Batch

__all__ = ["decode"]


def decode(values: Iterable[bytes]) -> tuple[Batch, set[str], list[tuple[bytes, str]]]:
    """``hazwatch.readings`` values -> one columnar batch, its sites, and undecodable messages.

    Each message is decoded once and the batch built once; only when that fails is each message
    tried on its own, to set the bad ones aside."""
    good: list[tuple[bytes, dict]] = []
    rejects: list[tuple[bytes, str]] = []
    for raw in values:
        try:
            good.append((raw, orjson.loads(raw)))
        except orjson.JSONDecodeError as exc:
            rejects.append((raw, f"undecodable readings message: {exc!r}"))
    try:
        return Batch.from_messages(m for _r, m in good), {m["site"] for _r, m in good}, rejects
    except Exception:  # noqa: BLE001, S110 - some message is malformed: find it, keep the others
        pass
    kept: list[dict] = []
    for raw, msg in good:
        try:
            Batch.from_messages([msg])  # validates the columns
            hash(msg["site"])
            kept.append(msg)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the batch
            rejects.append((raw, f"undecodable readings message: {exc!r}"))
    return Batch.from_messages(kept), {m["site"] for m in kept}, rejects
