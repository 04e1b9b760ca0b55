"""``hazwatch bench rules``: engine-only throughput of the rule engine, against a plain baseline.

What is measured (docs/BENCHMARKS.md):

1. a synthetic configuration of N sensors: the example sites replicated (each synthetic site is a
   copy of one example site whose sensors are replicated ~``sensors_per_site`` times), so every
   rule kind the example configures (threshold ladders, rain windows, data quality, and whatever
   the engine gains later) is in the run: the engine is built from a real :class:`~config.Config`;
2. readings generated with numpy *before* timing: every sensor reports 1-3 readings per micro-batch
   (10 s apart, 30 s of event time per batch, ~2 N readings per batch); most values are normal,
   a few sensors at a time go on an excursion across their rungs, move and come back, so warnings
   are raised, escalated, de-escalated and cleared;
3. :meth:`rules.engine.Engine.process` over all batches, ``repeats`` times with a fresh engine,
   pinned to one CPU; the median readings/s is reported (batch construction is not timed, the
   (site, sensor) -> index mapping inside ``process`` is);
4. the same readings (a prefix of ``baseline_readings``) through
   :class:`hazwatch.bench_baseline.BaselineEngine`, a per-reading Python loop over the same rules
   (input policy, data quality, threshold, rain, rate and trend: the ``baseline_stages`` of the
   result; not the engine's maintenance windows, allowed-lateness reorder buffer and site rules,
   which the synthetic configuration does not use), giving the same events, for the ratio;
5. the bytes of the engine's numpy arrays per sensor: ``state`` (per-sensor mutable state),
   ``window buffers`` (ring buffers of window rules) and the compiled rule tables, found by walking
   the engine's attributes (:func:`array_inventory`); plus everything the engine keeps
   (tracemalloc), Python dicts and lists included.
"""

from __future__ import annotations

import cProfile
import io
import os
import platform
import pstats
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any

import numba
import numpy as np
import orjson
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from config import Config
from hazwatch.bench_baseline import BASELINE_STAGES, BaselineEngine
from hazwatch.bench_synthetic import synthetic_batches, synthetic_config
from rules.batch import Batch
from rules.engine import Engine

__all__ = [
    "TARGETS",
    "array_inventory",
    "bench_command",
    "bench_rules",
    "machine_info",
]

#: Targets of issue 5 on the 2-core reference machine.
TARGETS = {"engine_readings_per_s": 2_000_000, "ratio": 50.0, "state_bytes_per_sensor": 1024}
WINDOW_WORDS = ("window", "buffer", "ring", "bins")
"""A state array whose attribute path holds one of these is a window buffer, not per-sensor state."""
def array_inventory(engine: object) -> dict[str, dict[str, int]]:
    """nbytes of the numpy arrays reachable from ``engine`` by attribute path, in three categories.

    ``state``: below an attribute named ``state`` or an object whose class name ends in ``State``;
    ``window_buffers``: state whose path names a window, buffer, ring or bins (rain bins, spike
    windows); ``tables``: the rest (compiled rules, indices). Arrays reachable twice count once.
    """
    found: dict[str, dict[str, int]] = {"state": {}, "window_buffers": {}, "tables": {}}
    seen: set[int] = set()

    def walk(obj: Any, path: str, in_state: bool, depth: int) -> None:
        if id(obj) in seen or depth > 8 or isinstance(obj, (BaseModel, str, bytes, int, float)):
            return
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            windowed = in_state and any(w in path.lower() for w in WINDOW_WORDS)
            cat = "window_buffers" if windowed else "state" if in_state else "tables"
            found[cat][path] = found[cat].get(path, 0) + obj.nbytes
            return
        if isinstance(obj, dict | list | tuple):
            for val in obj.values() if isinstance(obj, dict) else obj:
                walk(val, path, in_state, depth + 1)  # e.g. rows_of_site: one path for all
            return
        names = ([f.name for f in fields(obj)] if is_dataclass(obj)
                 else list(vars(obj)) if hasattr(obj, "__dict__") else [])
        state = in_state or type(obj).__name__.endswith("State")
        for name in names:
            walk(getattr(obj, name, None), f"{path}.{name}" if path else name,
                 state or name == "state", depth + 1)

    walk(engine, "", False, 0)
    return found


def machine_info() -> dict[str, Any]:
    """CPU model (/proc/cpuinfo), cores, Python, numpy and numba versions."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "cores_available": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "platform": platform.platform()}


def _time_engine(config: Config, batches: list[Batch], now: list[int]) -> tuple[float, int]:
    engine = Engine(config)
    engine.warm_up()  # the compiled loops are ready, as in a worker after its start
    t0 = time.perf_counter()
    events = 0
    for batch, now_ms in zip(batches, now):
        events += len(engine.process(batch, now_ms).warnings)
    return time.perf_counter() - t0, events


def _time_worker(config: Config, batches: list[Batch], now: list[int]) -> float:
    """Seconds for what the rules worker does per batch besides Kafka: evaluate, then export the
    state of every site the batch touched (``Engine.export_site``, the table's JSON-able value)."""
    engine = Engine(config)
    engine.warm_up()
    touched = [sorted(set(b.site)) for b in batches]  # decode() finds them; not timed
    t0 = time.perf_counter()
    for batch, now_ms, sites in zip(batches, now, touched):
        engine.process(batch, now_ms)
        for site in sites:
            engine.export_site(site)
    return time.perf_counter() - t0


def _time_baseline(config: Config, batches: list[Batch], now: list[int]) -> tuple[float, int]:
    baseline = BaselineEngine(config)
    t0 = time.perf_counter()
    events = 0
    for batch, now_ms in zip(batches, now):
        events += len(baseline.process(batch, now_ms).warnings)
    return time.perf_counter() - t0, events


def bench_rules(sensors: int = 100_000, *, batches: int = 10, repeats: int = 5,
                baseline_readings: int = 200_000, baseline_repeats: int = 3, seed: int = 0,
                one_core: bool = True, profile: bool = False,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark and return its result (the ``--json`` object). ``log(msg)`` narrates."""
    say = log or (lambda _msg: None)
    say(f"building a configuration of {sensors:,} sensors")
    config = synthetic_config(sensors)
    say(f"generating {batches} micro-batches of readings")
    data = synthetic_batches(config, batches, seed=seed)
    now = [int(b.ts.max()) for b in data]
    total = sum(len(b) for b in data)
    sub: list[Batch] = []
    for b in data:
        if sum(len(x) for x in sub) >= baseline_readings:
            break
        sub.append(b)
    sub_total = sum(len(b) for b in sub)
    cpus = os.sched_getaffinity(0)
    if one_core:  # "on one core": numpy here is single-threaded anyway; pinning makes it explicit
        os.sched_setaffinity(0, {min(cpus)})
    try:
        warm = Engine(config)
        t0 = time.perf_counter()
        warm.warm_up()  # compiling the loops (or loading them from numba's cache) is not timed
        warm_up_s = time.perf_counter() - t0
        say(f"engine: {repeats} x {total:,} readings (loops compiled or loaded in {warm_up_s:.2f} s)")
        runs = [_time_engine(config, data, now) for _ in range(repeats)]
        say(f"baseline: {baseline_repeats} x {sub_total:,} readings")
        base_runs = [_time_baseline(config, sub, now) for _ in range(baseline_repeats)]
        say(f"worker (engine + state export): 3 x {total:,} readings")
        worker_runs = [_time_worker(config, data, now) for _ in range(3)]
        hot = _profile(config, data, now) if profile else None
    finally:
        os.sched_setaffinity(0, cpus)
    engine_rate = statistics.median(total / s for s, _ in runs)
    base_rate = statistics.median(sub_total / s for s, _ in base_runs)
    tracemalloc.start()  # everything the engine keeps: built, then one batch (lazy stages)
    before = tracemalloc.get_traced_memory()[0]
    engine = Engine(config)
    engine.process(data[0], now[0])
    engine_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    for b, now_ms in zip(data[1:], now[1:]):  # state after the run, in case arrays grow on demand
        engine.process(b, now_ms)
    inv = array_inventory(engine)
    n_rules = sum(len(x.thresholds) for s in config.sites for x in s.sensors)
    result: dict[str, Any] = {
        "engine_readings_per_s": round(engine_rate),
        "baseline_readings_per_s": round(base_rate),
        "ratio": round(engine_rate / base_rate, 1),
        "state_bytes_per_sensor": round(sum(inv["state"].values()) / sensors, 1),
        "window_buffer_bytes_per_sensor": round(sum(inv["window_buffers"].values()) / sensors, 1),
        "table_bytes_per_sensor": round(sum(inv["tables"].values()) / sensors, 1),
        "engine_memory_bytes_per_sensor": round(engine_bytes / sensors, 1),
        "worker_readings_per_s": round(statistics.median(total / s for s in worker_runs)),
        "export_ms_per_site": round(1000 * (statistics.median(worker_runs) - statistics.median(s for s, _ in runs))
                                    / sum(len(set(b.site)) for b in data), 3),
        "arrays": {cat: dict(sorted(paths.items())) for cat, paths in inv.items()},
        "sensors": sensors, "sites": len(config.sites), "threshold_rules": n_rules,
        "batches": batches, "readings": total, "readings_per_batch": round(total / batches),
        "repeats": repeats, "engine_runs_readings_per_s": [round(total / s) for s, _ in runs],
        "engine_warnings": runs[0][1], "baseline_readings": sub_total,
        "baseline_runs_readings_per_s": [round(sub_total / s) for s, _ in base_runs],
        "baseline_warnings": base_runs[0][1], "baseline_stages": list(BASELINE_STAGES),
        "one_core": one_core, "seed": seed, "warm_up_s": round(warm_up_s, 2),
        "targets": TARGETS, "machine": machine_info(),
    }
    result["meets_targets"] = {
        "engine_readings_per_s": result["engine_readings_per_s"] >= TARGETS["engine_readings_per_s"],
        "ratio": result["ratio"] >= TARGETS["ratio"],
        "state_bytes_per_sensor": result["state_bytes_per_sensor"] < TARGETS["state_bytes_per_sensor"],
    }
    if hot is not None:
        result["profile"] = hot
    return result


def _profile(config: Config, batches: list[Batch], now: list[int], top: int = 15) -> str:
    """cProfile of one engine run: the functions with the most own time."""
    engine = Engine(config)
    prof = cProfile.Profile()
    prof.enable()
    for b, now_ms in zip(batches, now):
        engine.process(b, now_ms)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def _table(r: dict[str, Any]) -> Table:
    t = Table(title=f"hazwatch bench rules: {r['sensors']:,} sensors")
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_column("met")
    ok = r["meets_targets"]
    mark = {True: "[green]yes[/]", False: "[red]no[/]"}
    t.add_row("engine readings/s (1 core)", f"{r['engine_readings_per_s']:,}",
              f">= {TARGETS['engine_readings_per_s']:,}", mark[ok["engine_readings_per_s"]])
    t.add_row("baseline readings/s (per-reading Python, same rules)", f"{r['baseline_readings_per_s']:,}", "", "")
    t.add_row("ratio engine / baseline", f"{r['ratio']:,}x", f">= {TARGETS['ratio']:g}x", mark[ok["ratio"]])
    t.add_row("state bytes/sensor", f"{r['state_bytes_per_sensor']:,}",
              f"< {TARGETS['state_bytes_per_sensor']:,}", mark[ok["state_bytes_per_sensor"]])
    t.add_row("window buffer bytes/sensor", f"{r['window_buffer_bytes_per_sensor']:,}", "", "")
    t.add_row("compiled rule tables bytes/sensor", f"{r['table_bytes_per_sensor']:,}", "", "")
    t.add_row("all engine memory bytes/sensor", f"{r['engine_memory_bytes_per_sensor']:,}", "", "")
    t.add_row("with the state export of the touched sites (worker)", f"{r['worker_readings_per_s']:,}", "", "")
    t.add_row("state export ms/site", f"{r['export_ms_per_site']:,}", "", "")
    t.add_row("warnings (engine run / baseline subset)",
              f"{r['engine_warnings']:,} / {r['baseline_warnings']:,}", "", "")
    m = r["machine"]
    t.caption = (f"{r['readings']:,} readings in {r['batches']} batches of ~{r['readings_per_batch']:,}; "
                 f"engine: median of {r['repeats']} runs\n"
                 f"runs: {', '.join(f'{x:,}' for x in r['engine_runs_readings_per_s'])} readings/s\n"
                 f"baseline: {', '.join(r['baseline_stages'])}\n"
                 f"{m['cpu']}, {m['cores']} cores; Python {m['python']}, numpy {m['numpy']}, "
                 f"numba {m.get('numba', '?')}; loops compiled or loaded in {r.get('warm_up_s', 0):.2f} s")
    return t


def bench_command(
    sensors: Annotated[int, typer.Option(help="Sensors in the synthetic configuration")] = 100_000,
    batches: Annotated[int, typer.Option(help="Micro-batches per run (~2 readings per sensor each)")] = 10,
    repeats: Annotated[int, typer.Option(help="Engine runs; the median is reported")] = 5,
    baseline_readings: Annotated[int, typer.Option(help="Readings fed to the per-reading baseline")] = 200_000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic readings")] = 0,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of the table")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON result to this file")] = None,
    profile: Annotated[bool, typer.Option(help="Add a cProfile of one engine run (stderr / JSON)")] = False,
    one_core: Annotated[bool, typer.Option(help="Pin the measurement to one CPU")] = True,
) -> None:
    """Engine-only throughput of the rule engine with the example rule set on N sensors."""
    err = Console(stderr=True)
    result = bench_rules(sensors, batches=batches, repeats=repeats, baseline_readings=baseline_readings,
                         seed=seed, one_core=one_core, profile=profile,
                         log=lambda msg: err.print(f"[dim]{msg}[/]"))
    payload = orjson.dumps(result, option=orjson.OPT_INDENT_2)
    if out is not None:
        out.write_bytes(payload + b"\n")
    if json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
    else:
        console = Console()
        if not console.is_terminal:  # a file or a pipe: wide enough for the table, not 80 columns
            console = Console(width=110)
        console.print(_table(result))
        if profile:
            err.print(result["profile"], markup=False, highlight=False)
