"""``hazwatch bench rules``: the per-reading baseline gives the engine's events, and the command's
JSON carries the required keys. No timing assertions: numbers depend on the machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from config import Config
from config.rules import QualitySpec
from hazwatch.bench import array_inventory, bench_app, synthetic_batches, synthetic_config
from hazwatch.bench_baseline import BaselineEngine
from rules.engine import Batch, Engine
from rules.events import WarningEvent


def thresholds_only(config: Config) -> Config:
    """The same sites and ladders with the other stages neutral: no rain rule, no physical range
    (out of range), default quality checks (no stuck or spike test; offline needs the clock,
    which ``process`` does not tick)."""
    neutral = {"rain": None, "range": None, "quality": QualitySpec()}
    sites = [site.model_copy(update={"sensors": [s.model_copy(update=neutral)
                                                 for s in site.sensors]}) for site in config.sites]
    return config.model_copy(update={"sites": sites})


def key(e: WarningEvent) -> tuple[object, ...]:
    """Everything but emitted_at (the engine stamps now_ms, the baseline the reading's ts)."""
    return (e.ts, e.subject, e.rule, e.episode, e.kind, e.level, e.previous, e.value, e.threshold, e.unit,
            tuple(sorted(e.detail.items())))


def run_both(config: Config, batches: list[Batch]) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    engine, baseline = Engine(config), BaselineEngine(config)
    got, want = [], []
    for b in batches:
        got += [key(e) for e in engine.process(b, int(b.ts.max())).warnings]
        want += [key(e) for e in baseline.process(b.site, b.sensor, b.ts, b.v, b.q)]
    assert (baseline.readings, baseline.evaluated, baseline.bad_quality) == (
        engine.stats.readings, engine.stats.evaluated, engine.stats.bad_quality)
    return sorted(got), sorted(want)


def test_baseline_gives_the_engines_events_on_the_synthetic_workload() -> None:
    config = thresholds_only(synthetic_config(300, sensors_per_site=30))
    batches = synthetic_batches(config, 40, seed=3, p_on=0.05, p_off=0.1)
    got, want = run_both(config, batches)
    assert len(want) > 50  # raised, escalated, de-escalated and cleared all occur
    assert {k[4] for k in want} == {"raised", "escalated", "deescalated", "cleared"}
    assert got == want


EDGES = thresholds_only(synthetic_config(10, sensors_per_site=3))  # one copy of each example sensor


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.sampled_from([0.0, 4.0, 4.3, 4.4, 4.5, 4.8, 4.9, 8.0, 8.5, 9.2, 10.0, 23.0, 25.0, 50.0]),
                    min_size=1, max_size=40),
    sensor=st.sampled_from(["GT-101", "LT-201", "PZ-01"]),
    step_ms=st.sampled_from([1000, 5000, 300_000]),
    batch=st.sampled_from([1, 3, 100]),
)
def test_baseline_equals_the_engine_on_ladder_edges(values: list[float], sensor: str, step_ms: int,
                                                     batch: int) -> None:
    """Exactly-at rungs, the deadband edge and interrupted minimum durations, on example ladders."""
    config = EDGES
    site = next(s.id for s in config.sites if any(x.id.startswith(sensor) for x in s.sensors))
    sid = next(x.id for s in config.sites for x in s.sensors if x.id.startswith(sensor))
    ts = 1_700_000_000_000 + np.arange(len(values), dtype=np.int64) * step_ms
    batches = [Batch([site] * len(values[i:i + batch]), [sid] * len(values[i:i + batch]), ts[i:i + batch],
                     np.asarray(values[i:i + batch]), np.zeros(len(values[i:i + batch]), dtype=np.int64))
               for i in range(0, len(values), batch)]
    got, want = run_both(config, batches)
    assert got == want


def test_state_arrays_are_found_and_categorised() -> None:
    config = synthetic_config(200)
    engine = Engine(config)
    for b in synthetic_batches(config, 2):
        engine.process(b, int(b.ts.max()))
    inv = array_inventory(engine)
    assert "threshold.state.level" in inv["state"] and "thresholds.rungs" in inv["tables"]
    assert not set(inv["state"]) & set(inv["window_buffers"])
    assert sum(inv["state"].values()) > 0 and sum(inv["tables"].values()) > 0


def test_synthetic_config_has_the_requested_sensors_and_the_example_rules() -> None:
    config = synthetic_config(1234, sensors_per_site=50)
    assert sum(len(s.sensors) for s in config.sites) == 1234
    ids = [(s.id, x.id) for s in config.sites for x in s.sensors]
    assert len(set(ids)) == len(ids)
    assert {x.thresholds[0].rule for s in config.sites for x in s.sensors if x.thresholds} >= {
        "combustible_gas", "phreatic_depth", "tank_level"}


@pytest.mark.parametrize("extra", [[], ["--out"]])
def test_bench_command_prints_the_required_json(tmp_path: Path, extra: list[str]) -> None:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")
    out = tmp_path / "bench.json"
    args = ["bench", "rules", "--sensors", "1000", "--json", "--batches", "3", "--repeats", "2",
            "--baseline-readings", "2000", *([*extra, str(out)] if extra else [])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    for k in ("engine_readings_per_s", "baseline_readings_per_s", "ratio", "state_bytes_per_sensor",
              "window_buffer_bytes_per_sensor", "machine"):
        assert k in data, k
    assert data["engine_readings_per_s"] > 0 and data["baseline_readings_per_s"] > 0
    assert set(data["machine"]) >= {"cpu", "cores", "python", "numpy"}
    assert data["sensors"] == 1000 and data["readings"] > 3000
    if extra:
        assert orjson.loads(out.read_bytes()) == data


def test_bench_command_prints_a_table() -> None:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")
    result = CliRunner().invoke(app, ["bench", "rules", "--sensors", "200", "--batches", "2", "--repeats", "1",
                                      "--baseline-readings", "100"])
    assert result.exit_code == 0, result.output
    assert "engine readings/s" in result.stdout and "state bytes/sensor" in result.stdout
