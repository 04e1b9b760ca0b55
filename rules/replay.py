"""Offline replay: the rule engine over a file of readings, as ``hazwatch replay`` runs it.

Operators tune thresholds on last season's data with it: the stream's :class:`~rules.engine.Engine`,
nothing re-implemented, and deterministic.

- **Input** (read by :mod:`rules.replay_input`): JSON lines ``{"site", "sensor", "ts", "v", "q"?}`` (``ts`` epoch ms or RFC 3339 with
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

import itertools
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
from config.exit_codes import ExitCode
from config.models import LEVELS, Config
from rules.engine import Engine, Output
from rules.replay_input import (
    _TS_LIMIT, CHUNK, MAX_LISTED, FileBatch, Malformed, ReplayError, read_maintenance, read_readings,
)

__all__ = ["FileBatch", "Malformed", "ReplayError", "ReplayResult", "default_tick_ms", "read_maintenance",
           "read_readings", "replay", "replay_command"]


@dataclass
class ReplayResult:
    """Events and counts of one replay; all but ``elapsed_s`` deterministic. ``warnings``: docs/ARCHITECTURE.md §14.4
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
        raise typer.Exit(ExitCode.USAGE) from None

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
            raise typer.Exit(ExitCode.USAGE) from None
        except BrokenPipeError:  # `hazwatch replay ... | head`
            raise typer.Exit(ExitCode.OK) from None
    sys.stdout.flush()
    for what, listed in (("malformed", res.malformed), ("rejected", res.rejected)):
        for m in listed[:20]:
            err.print(f"{file}:{m.line}: {what}, skipped: {m.reason}", markup=False, highlight=False)
        if res.counts[what] > 20:
            err.print(f"... {res.counts[what] - 20:,} more {what} lines", markup=False)
    err.print(*_tables(res), sep="\n")
