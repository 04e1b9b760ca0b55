"""Offline replay: the rule engine over a file of readings, as ``hazwatch replay`` runs it.

Operators tune thresholds on last season's data with it: the stream's :class:`~rules.engine.Engine`,
nothing re-implemented, and deterministic.

- **Input**: JSON lines ``{"site", "sensor", "ts", "v", "q"?}`` (``ts`` epoch ms or RFC 3339 with
  an offset; ``q`` 0 = good, the default) or CSV with the header ``site,sensor,ts,v[,q]`` (any
  order, extra columns ignored); ``.gz`` is read compressed. Read in chunks, never whole. A
  malformed line is reported (line number, reason) and skipped, never fatal.
- **Semantics**: those of evaluating the readings one at a time in file order (arrival order),
  whatever the micro-batch size: the engine judges a reading late by the readings of its sensor
  that arrived before it, in earlier batches or earlier in the same one.
- **Runtime maintenance windows** (``--maintenance FILE``): JSON lines of ``hazwatch.maintenance``
  records (``hazwatch silences publish --all --print`` writes them); the last record of each
  silence id holds for the whole replay, as the worker's table held it for readings that arrived
  after the record. Windows of ``sites.yaml`` apply as always.
- **Clock**: event time on a grid, never the wall clock (see :func:`replay`);
  ``emitted_at`` (and a health event's ``detected_at``) is the ts of the event.
- **Output order**: by the file line of the deciding reading, health before warnings, then site,
  subject and rule: the order of reading-by-reading evaluation. Printed after each micro-batch.

Errors::

    ReplayError     the file cannot be read at all (missing, no CSV header); bad lines are not errors;
                    a maintenance file with a bad line
"""

from __future__ import annotations

import csv
import gzip
import itertools
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
import typer
from rich import progress
from rich.console import Console
from rich.table import Column, Table

from config import ConfigError, example_dir, load_config
from config.models import LEVELS, Config
from ingest.validate import parse_ts
from rules.engine import Batch, Engine, Output
from rules.maintenance import RuntimeWindow, fold_windows

__all__ = ["FileBatch", "Malformed", "ReplayError", "ReplayResult", "default_tick_ms", "read_maintenance",
           "read_readings", "replay", "replay_command"]

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


@dataclass
class ReplayResult:
    """Events and counts of one replay; all but ``elapsed_s`` deterministic. ``warnings``: DESIGN.md
    warning events (``emitted_at`` = ``ts``); ``malformed``, ``rejected`` (unknown sensor): the first
    :data:`MAX_LISTED` lines; ``counts``: exact; ``by_level``: warning events entering each level
    (raised, escalated or de-escalated to it); ``by_site``: the same per site, plus its episodes."""

    warnings: list[dict[str, Any]] = field(default_factory=list)
    health: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    rejected: list[Malformed] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    engine_stats: dict[str, int] = field(default_factory=dict)
    by_level: dict[str, int] = field(default_factory=dict)
    by_site: dict[str, dict[str, int]] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    first_ts: int | None = None
    last_ts: int | None = None
    elapsed_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The deterministic summary as plain JSON-able data (events excluded)."""
        keys = ("counts", "engine_stats", "by_level", "by_site", "by_kind", "first_ts", "last_ts")
        return {k: getattr(self, k) for k in keys} | {k: [asdict(m) for m in getattr(self, k)]
                                                      for k in ("malformed", "rejected")}


def _order(event: dict[str, Any], health: bool, part: FileBatch | None) -> tuple[Any, ...]:
    """Output order: the file line of the reading that decided ``event`` (else the part's last),
    health before warnings, site, subject, rule or check, and the event itself."""
    line, (site, _, sensor) = 0, str(event.get("subject", "")).partition("/")
    if part is not None:
        match = [i for i in np.flatnonzero(part.ts == event.get("ts")).tolist()
                 if part.site[i] == event.get("site", site) and (not sensor or part.sensor[i] == sensor)]
        line = int(part.line[match[0] if match else -1])
    return (line, not health, str(event.get("site", "")), str(event.get("subject", "")),
            str(event.get("rule", event.get("check", ""))), orjson.dumps(event, option=orjson.OPT_SORT_KEYS))


def _pieces(part: FileBatch, tick_ms: int) -> Iterator[tuple[int, FileBatch]]:
    """(clock cell, piece): ``part`` cut where the cell ``ts // tick_ms`` changes."""
    cell = part.ts // tick_ms
    bounds = [0, *(np.flatnonzero(cell[1:] != cell[:-1]) + 1).tolist(), len(part)]
    for a, b in itertools.pairwise(bounds):
        yield int(cell[a]), part.slice(a, b)


def default_tick_ms(config: Config) -> int:
    """A third of the shortest offline interval (period x offline_after_periods), 1 s to 5 min."""
    shortest = min((s.period_s * s.quality.offline_after_periods for site in config.sites for s in site.sensors),
                   default=900.0)
    return int(min(max(shortest * 1000 / 3, 1000), 300_000))


def replay(config: Config, path: str | Path, *, batch_size: int = CHUNK, tick_ms: int | None = None,
           on_progress: Callable[[int, int], None] | None = None,
           on_event: Callable[[dict[str, Any], bool], None] | None = None,
           maintenance: dict[str, list[dict[str, Any]]] | None = None) -> ReplayResult:
    """Run a fresh :class:`Engine` over the readings in ``path`` in micro-batches of ``batch_size``.

    The replay clock steps on a grid of ``tick_ms`` of event time (default
    :func:`default_tick_ms`): readings stamped in ``[k, k + 1) x tick_ms`` are processed with
    ``now_ms = k x tick_ms`` (never going back), after the clock-driven checks (:meth:`Engine.tick`:
    offline) ran at that time -- the same points whatever the batch size; offline is found at most
    one step late.
    ``on_event(event, is_health)`` gets every event in output order, after each micro-batch.
    ``maintenance``: site -> runtime windows (:func:`read_maintenance`), given to the engine first.
    Raise :class:`ReplayError` when the file cannot be read at all.
    """
    tick_ms = tick_ms or default_tick_ms(config)
    if batch_size < 1 or tick_ms < 1:
        raise ValueError(f"batch_size and tick_ms must be >= 1, got {batch_size} and {tick_ms}")
    started = time.perf_counter()
    engine, res, counts = Engine(config), ReplayResult(), Counter[str]()
    for site, windows in (maintenance or {}).items():
        engine.set_site_windows(site, windows)
    now, ticked = -_TS_LIMIT, None

    def listed(into: list[Malformed], what: str, m: Malformed) -> None:
        counts[what] += 1
        if len(into) < MAX_LISTED:
            into.append(m)

    def emit(out: Output, part: FileBatch | None) -> None:
        events = [(asdict(replace(w, emitted_at=w.ts)), False) for w in out.warnings]
        events += [({**h, **{k: h["ts"] for k in ("emitted_at", "detected_at") if k in h and "ts" in h}}, True)
                   for h in out.health]
        for event, health in sorted(events, key=lambda e: _order(e[0], e[1], part)):
            (res.health if health else res.warnings).append(event)
            if on_event is not None:
                on_event(event, health)

    for chunk in read_readings(path, chunk_size=max(batch_size, CHUNK), on_progress=on_progress,
                               on_malformed=lambda m: listed(res.malformed, "malformed", m)):
        lo, hi = int(chunk.ts.min()), int(chunk.ts.max())
        res.first_ts = lo if res.first_ts is None else min(res.first_ts, lo)
        res.last_ts = hi if res.last_ts is None else max(res.last_ts, hi)
        for a in range(0, len(chunk), batch_size):
            for cell, part in _pieces(chunk.slice(a, a + batch_size), tick_ms):
                if ticked is not None and cell > ticked:
                    emit(engine.tick(cell * tick_ms), None)
                ticked, now = cell if ticked is None else max(cell, ticked), max(now, cell * tick_ms)
                out = engine.process(part, now)
                for i, reason in sorted(out.rejects):  # in file order
                    listed(res.rejected, "rejected", Malformed(int(part.line[i]), reason))
                emit(out, part)
    emit(engine.flush(now), None)  # readings still waiting out an allowed lateness
    st = res.engine_stats = {k: int(v) for k, v in vars(engine.stats).items() if isinstance(v, int | np.integer)}
    res.counts = {"readings": st.get("readings", 0), "malformed": counts["malformed"],
                  "evaluated": st.get("evaluated", 0), "stale": int(getattr(engine, "stale", 0)),
                  "bad_quality": st.get("bad_quality", 0), "rejected": counts["rejected"],
                  "warnings": len(res.warnings), "health": len(res.health),
                  "episodes": sum(w["kind"] == "raised" for w in res.warnings)}
    res.counts |= {k: v for k, v in st.items() if k not in res.counts}  # e.g. unknown, late, quarantined
    for w in sorted(res.warnings, key=lambda w: w["site"]):
        site = res.by_site.setdefault(w["site"], dict.fromkeys(("episodes", *LEVELS[1:]), 0))
        site["episodes"] += w["kind"] == "raised"
        if w["level"] != "normal":  # a clearance enters no warning level
            site[w["level"]] += 1
    res.by_level = {lv: sum(s[lv] for s in res.by_site.values()) for lv in LEVELS[1:]}
    res.by_kind = dict(sorted(Counter(w["kind"] for w in res.warnings).items()))
    res.elapsed_s = time.perf_counter() - started
    return res


# -- command line -------------------------------------------------------------------------------


_LABELS = {"readings": "readings read", "malformed": "malformed lines, skipped", "evaluated": "evaluated by the rules",
           "stale": "duplicates, ignored", "duplicates": "duplicates in a lateness buffer, ignored",
           "bad_quality": "bad quality (q != 0)", "maintenance": "inside a maintenance window",
           "quarantined": "quarantined by data quality", "rejected": "rejected (unknown or late)",
           "unknown": "  unknown sensor", "late": "  late", "health": "health events"}  # in this order


def _tables(res: ReplayResult) -> list[Table | str]:
    days = 0.0 if res.first_ts is None else ((res.last_ts or 0) - res.first_ts) / 86_400_000
    readings = Table("readings", Column("count", justify="right"))
    for name in sorted(set(res.counts) - {"warnings", "episodes"}, key=lambda k: (list(_LABELS) + [k]).index(k)):
        readings.add_row(_LABELS.get(name, name.replace("_", " ")), f"{res.counts[name]:,}")
    sites = Table("site", *(Column(c, justify="right") for c in ("episodes", *LEVELS[1:])),
                  title="warnings by site and level entered")
    for site, row in res.by_site.items():
        sites.add_row(site, *(f"{row[k]:,}" for k in ("episodes", *LEVELS[1:])))
    sites.add_row("[b]all", f"[b]{res.counts['episodes']:,}", *(f"[b]{res.by_level[lv]:,}" for lv in LEVELS[1:]))
    kinds = ", ".join(f"{n:,} {k}" for k, n in res.by_kind.items())
    return [f"replay: {days:.1f} days of readings in {res.elapsed_s:.1f} s", readings, sites,
            f"{res.counts['warnings']:,} warning events ({kinds or 'none'})"]


def replay_command(
    file: Annotated[Path, typer.Argument(help="Readings: JSON lines or CSV, .gz allowed",
                                         exists=True, dir_okay=False)],
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="Configuration directory (default: the example).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Readings per engine micro-batch")] = CHUNK,
    summary_only: Annotated[bool, typer.Option("--summary-only", help="Print no events")] = False,
    maintenance: Annotated[Path | None, typer.Option(
        help="Runtime maintenance windows: JSON lines of hazwatch.maintenance records "
             "(hazwatch silences publish --all --print)", exists=True, dir_okay=False)] = None,
) -> None:
    """Run the rule engine offline over a file of readings; print its events as JSON lines."""
    err = Console(stderr=True, soft_wrap=True)
    try:
        cfg = load_config(config or example_dir())
    except ConfigError as exc:
        err.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None

    def on_event(event: dict[str, Any], _health: bool) -> None:
        if not summary_only:
            sys.stdout.write(orjson.dumps(event).decode() + "\n")

    size = file.stat().st_size  # a progress bar only where it helps: a file of 1 MiB or more
    with progress.Progress("replay", progress.BarColumn(), progress.DownloadColumn(), progress.TransferSpeedColumn(),
                           progress.TimeRemainingColumn(), console=err, transient=True, disable=size < 1 << 20) as bar:
        task = bar.add_task("replay", total=size)
        try:
            windows = read_maintenance(maintenance) if maintenance is not None else None
            res = replay(cfg, file, batch_size=batch_size, on_event=on_event, maintenance=windows,
                         on_progress=lambda done, _total: bar.update(task, completed=done))
        except ReplayError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        except BrokenPipeError:  # `hazwatch replay ... | head`
            raise typer.Exit(0) from None
    sys.stdout.flush()
    for what, listed in (("malformed", res.malformed), ("rejected", res.rejected)):
        for m in listed[:20]:
            err.print(f"{file}:{m.line}: {what}, skipped: {m.reason}", markup=False, highlight=False)
        if res.counts[what] > 20:
            err.print(f"... {res.counts[what] - 20:,} more {what} lines", markup=False)
    err.print(*_tables(res), sep="\n")
