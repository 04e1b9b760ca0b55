"""Reading the input files of ``hazwatch replay``: readings (JSON lines or CSV, ``.gz`` allowed) in
chunks, with malformed lines reported and skipped, and runtime maintenance windows.

Formats and semantics: :mod:`rules.replay`.

Errors::

    ReplayError     the file cannot be read at all (missing, no CSV header); a maintenance file
                    with a bad line
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from formats.maintenance import RuntimeWindow
from ingest.validate import parse_ts
from rules.batch import Batch
from rules.maintenance import fold_windows

__all__ = ["CHUNK", "MAX_LISTED", "FileBatch", "Malformed", "ReplayError", "read_maintenance", "read_readings"]

CHUNK = 50_000  # readings per chunk read from the file, and the default micro-batch
MAX_LISTED = 1000  # malformed lines and rejected readings listed in a result; counts are exact
_TS_LIMIT = 2**62  # epoch ms beyond this are not timestamps (and would overflow int64 arithmetic)


class ReplayError(Exception):
    """The file cannot be replayed at all."""


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line that was skipped (1-based line number), and why."""

    line: int
    reason: str


@dataclass
class FileBatch(Batch):
    """A :class:`Batch` that remembers the file line of each reading (1-based)."""

    line: np.ndarray  # int64

    def slice(self, a: int, b: int) -> FileBatch:
        return FileBatch(self.site[a:b], self.sensor[a:b], self.ts[a:b], self.v[a:b], self.q[a:b], self.line[a:b])


# -- reading ------------------------------------------------------------------------------------


def _reading(site: Any, sensor: Any, ts: Any, v: Any, q: Any) -> tuple[str, str, int, float, int]:
    """Validate one reading's fields; raise ValueError with the reason. (``type() is``, not
    ``isinstance``: faster on the hot path, and it keeps JSON ``true`` out of numbers.)"""
    if type(site) is not str or type(sensor) is not str or not site or not sensor:
        for name, x in (("site", site), ("sensor", sensor)):
            if x is None:
                raise ValueError(f"{name} is missing")
        raise ValueError("site and sensor must be non-empty strings")
    if ts is None:
        raise ValueError("ts is missing")
    t = ts if type(ts) is int else parse_ts(ts)
    if not -_TS_LIMIT < t < _TS_LIMIT:
        raise ValueError(f"ts {t} is out of range")
    if (type(v) is not float and type(v) is not int) or not math.isfinite(v):
        raise ValueError("v is missing" if v is None else f"v must be a finite number, got {v!r}")
    if q is not None and (type(q) is not int or not -_TS_LIMIT < q < _TS_LIMIT):
        raise ValueError(f"q must be an integer quality code, got {q!r}")
    return site, sensor, t, float(v), q or 0


def _json_rows(lines: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, Any]]:
    """(line, reading tuple or the reason it is malformed) for JSON lines."""
    for no, raw in lines:
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield no, f"not JSON: {exc}"
            continue
        if not isinstance(obj, dict):
            yield no, f"a reading must be a JSON object, got {type(obj).__name__}"
            continue
        try:
            yield no, _reading(obj.get("site"), obj.get("sensor"), obj.get("ts"), obj.get("v"), obj.get("q"))
        except (ValueError, OverflowError) as exc:
            yield no, str(exc)


def _csv_field(text: str, what: str) -> Any:
    """A CSV cell as JSON would carry it: an integer, else a float (v) or the text (ts, q)."""
    text = text.strip()
    if text.lstrip("+-").isdigit():
        return int(text)
    if what == "v":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"v must be a number, got {text!r}") from None
    return text or None  # ts: RFC 3339, checked by parse_ts; q: empty = good


def _csv_rows(lines: Iterator[tuple[int, bytes]]) -> Iterator[tuple[int, Any]]:
    numbers: list[int] = []

    def text() -> Iterator[str]:
        for no, raw in lines:
            numbers.append(no)
            yield raw.decode("utf-8", "replace")

    header: list[str] | None = None
    for row in csv.reader(text()):
        no = numbers[-1]
        if not row or all(not c.strip() for c in row):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            missing = [c for c in ("site", "sensor", "ts", "v") if c not in header]
            if missing:
                raise ReplayError(f"line {no}: the CSV header must name site,sensor,ts,v[,q]; missing {missing}")
            col = {name: header.index(name) for name in ("site", "sensor", "ts", "v", "q") if name in header}
            continue
        if len(row) < len(header):
            yield no, f"expected {len(header)} columns, got {len(row)}"
            continue
        try:
            q = _csv_field(row[col["q"]], "q") if "q" in col else None
            yield no, _reading(row[col["site"]].strip(), row[col["sensor"]].strip(),
                               _csv_field(row[col["ts"]], "ts"), _csv_field(row[col["v"]], "v"), q)
        except (ValueError, OverflowError) as exc:
            yield no, str(exc)


def read_readings(path: str | Path, *, chunk_size: int = CHUNK,
                  on_malformed: Callable[[Malformed], None] | None = None,
                  on_progress: Callable[[int, int], None] | None = None) -> Iterator[FileBatch]:
    """Stream the readings of ``path`` as columnar batches of at most ``chunk_size`` readings.

    CSV when the name ends in ``.csv`` (or ``.csv.gz``) or the first line is not a JSON object,
    else JSON lines. Malformed lines go to ``on_malformed`` and are skipped. ``on_progress(read,
    total)`` gets the (compressed) bytes read after each chunk. Raise :class:`ReplayError` when the
    file cannot be read or a CSV file has no usable header.
    """
    path = Path(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from exc
    stream, total = (gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw), os.fstat(raw.fileno()).st_size
    with raw, stream:
        try:
            numbered = enumerate(stream, start=1)
            head = [(no, line.lstrip(b"\xef\xbb\xbf")) for no, line in itertools.islice(numbered, 1)]  # BOM
            csv_file = path.name.removesuffix(".gz").endswith(".csv") or not (head and head[0][1].lstrip().startswith(b"{"))
            lines = itertools.chain(head, numbered)
            rows = _csv_rows(lines) if csv_file else _json_rows(lines)
            while True:
                buf: list[tuple[str, str, int, float, int, int]] = []
                for no, row in rows:
                    if not isinstance(row, str):
                        buf.append((*row, no))
                        if len(buf) >= chunk_size:
                            break
                    elif on_malformed is not None:
                        on_malformed(Malformed(no, row))
                if on_progress is not None:
                    on_progress(raw.tell(), total)
                if not buf:
                    return
                site, sensor, ts, v, q, line = zip(*buf, strict=True)
                yield FileBatch(list(site), list(sensor), np.asarray(ts, dtype=np.int64),
                                np.asarray(v, dtype=np.float64), np.asarray(q, dtype=np.int64),
                                np.asarray(line, dtype=np.int64))
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise ReplayError(f"cannot read {path}: {exc}") from exc


def read_maintenance(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Site -> runtime windows from a file of ``hazwatch.maintenance`` records (JSON lines, blank
    lines skipped, later records of a silence id replacing earlier ones). Unlike readings, a bad
    line is fatal (:class:`ReplayError` with its number): a window left out changes the result."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from exc
    records = []
    for no, raw in enumerate(lines, start=1):
        if raw.strip():
            try:
                records.append(orjson.loads(raw))
                RuntimeWindow.from_record(records[-1])
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise ReplayError(f"{path}:{no}: not a maintenance record: {exc}") from None
    return fold_windows(records)


# -- replay -------------------------------------------------------------------------------------
