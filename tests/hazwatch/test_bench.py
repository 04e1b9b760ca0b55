"""``hazwatch bench rules``: the per-reading baseline gives the engine's events -- warnings, health
events, rejects and counts -- on every stage it covers, and the command's JSON carries the
required keys. No timing assertions: numbers depend on the machine."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from config import Config, example_dir, load_config
from config.models import LadderStep
from config.rules import QualitySpec, RateRule, TrendRule
from formats.warning import WarningEvent
from hazwatch.bench import array_inventory
from hazwatch.bench_baseline import BASELINE_STAGES, BaselineEngine, BaselineStats
from hazwatch.bench_cli import bench_app
from hazwatch.bench_synthetic import synthetic_batches, synthetic_config
from rules.batch import Batch
from rules.engine import Engine
from rules.quality import CHECKS, FAULT_RULE

T0 = 1_719_792_000_000  # 2024-07-01T00:00:00Z


# -- configurations ----------------------------------------------------------------------------
def baseline_scope(config: Config) -> Config:
    """``config`` without the engine features the baseline does not implement (maintenance
    windows, site rules, allowed lateness), where the models have them."""
    site_off = {k: [] for k in ("maintenance", "site_rules") if k in type(config.sites[0]).model_fields}
    sensor_off = {"allowed_lateness_s": 0.0} if "allowed_lateness_s" in type(
        config.sites[0].sensors[0]).model_fields else {}
    sites = [s.model_copy(update={**site_off, "sensors": [x.model_copy(update=sensor_off) for x in s.sensors]})
             for s in config.sites]
    return Config(settings=config.settings, sites=sites, zones=config.zones, recipients=config.recipients)


def with_quality(config: Config, spec: QualitySpec) -> Config:
    sites = [s.model_copy(update={"sensors": [x.model_copy(update={"quality": spec}) for x in s.sensors]})
             for s in config.sites]
    return Config(settings=config.settings, sites=sites, zones=config.zones, recipients=config.recipients)


def steps(*pairs: tuple[str, float]) -> list[LadderStep]:
    return [LadderStep(level=level, value=value) for level, value in pairs]


def property_config() -> Config:
    """The example with every check on somewhere and windows short enough for random series:
    stuck and spike checks, a 1 h rate (mm/h) on GNSS-01, a 1 h trend on WL-01, and a second
    gauge on RG-001 that reports a resetting counter."""
    base = baseline_scope(load_config(example_dir()))
    changes: dict[str, dict[str, Any]] = {
        "GT-101": {"quality": QualitySpec(stuck_samples=3, spike_mad=3.0, spike_window=5)},
        "LT-201": {"quality": QualitySpec(stuck_samples=4)},
        "WL-01": {"trend": TrendRule(window_s=3600, horizon_s=3600, min_points=4),
                  "quality": QualitySpec(spike_mad=4.0, spike_window=6)},
        "GNSS-01": {"rate": [RateRule(rule="displacement_rate", window_s=3600, per_s=3600,
                                      ladder=steps(("yellow", 2), ("orange", 5), ("red", 10)), deadband=0.5,
                                      min_duration_s=600, min_span_s=1200)]},
    }
    sites = []
    for site in base.sites:
        sensors = [x.model_copy(update=changes.get(x.id, {})) for x in site.sensors]
        for x in site.sensors:
            if x.rain is not None:
                sensors.append(x.model_copy(update={"id": "RAIN-CTR", "quantity": "rain_counter", "range": (0, 1000),
                                                    "rain": x.rain.model_copy(update={"input": "counter"})}))
        sites.append(site.model_copy(update={"sensors": sensors}))
    return Config(settings=base.settings, sites=sites, zones=base.zones, recipients=base.recipients)


# -- running both -------------------------------------------------------------------------------
def stage_events(events: list[WarningEvent], config: Config) -> list[WarningEvent]:
    """The warnings of the stages the baseline covers: sensor rules and equipment faults."""
    ours = {(f"{s.id}/{x.id}", r) for s in config.sites for x in s.sensors
            for r in [FAULT_RULE, *(t.rule for t in x.thresholds), *(t.rule for t in x.rate),
                      *(t.rule for t in (x.rain, x.trend) if t is not None)]}
    return [e for e in events if (e.subject, e.rule) in ours]


def stage_health(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["check"] in (*CHECKS, "spike")]


def run_both(config: Config, batches: list[Batch], ticks: list[int | None] | None = None,
             ) -> tuple[list[WarningEvent], list[dict[str, Any]]]:
    """Both engines over ``batches`` (``now_ms``: the batch's newest ts), a clock tick
    ``ticks[i]`` ms after batch i where given; every output must be equal. Returns the engine's."""
    engine, baseline = Engine(config), BaselineEngine(config)
    warnings: list[WarningEvent] = []
    health: list[dict[str, Any]] = []
    for i, b in enumerate(batches):
        now = int(b.ts.max()) if len(b) else T0
        outputs = [(engine.process(b, now), baseline.process(b, now))]
        if ticks is not None and ticks[i] is not None:
            outputs.append((engine.tick(now + ticks[i]), baseline.tick(now + ticks[i])))
        for got, want in outputs:
            assert stage_events(got.warnings, config) == want.warnings
            assert stage_health(got.health) == want.health
            assert got.rejects == want.rejects
            warnings += want.warnings
            health += want.health
    for f in fields(BaselineStats):
        assert getattr(engine.stats, f.name) == getattr(baseline.stats, f.name), f.name
    assert engine.stale == baseline.stale
    return warnings, health


def chunks(site: list[str], sensor: list[str], ts: list[int], v: list[float], q: list[int],
           size: int) -> list[Batch]:
    return [Batch(site[i:i + size], sensor[i:i + size], np.asarray(ts[i:i + size], dtype=np.int64),
                  np.asarray(v[i:i + size], dtype=np.float64), np.asarray(q[i:i + size], dtype=np.int64))
            for i in range(0, len(ts), size)]


# -- the bench's synthetic workload ----------------------------------------------------------------
def test_baseline_gives_the_engines_events_on_the_synthetic_workload() -> None:
    config = baseline_scope(synthetic_config(300, sensors_per_site=30))
    batches = synthetic_batches(config, 60, seed=3, p_on=0.05, p_off=0.1)
    warnings, _ = run_both(config, batches)
    assert len(warnings) > 300
    assert {e.kind for e in warnings} == {"raised", "escalated", "deescalated", "cleared"}
    assert {e.rule for e in warnings} >= {"combustible_gas", "tank_level", "phreatic_depth", "rainfall"}


def test_baseline_gives_the_engines_quality_events_on_the_synthetic_workload() -> None:
    """Every sensor with stuck and spike checks: readings clipped at a range limit repeat (stuck),
    excursions start with outliers (spikes), and quarantine changes the ladders' course."""
    spec = QualitySpec(stuck_samples=3, spike_mad=4.0, spike_window=5)
    config = with_quality(baseline_scope(synthetic_config(200, sensors_per_site=20)), spec)
    batches = synthetic_batches(config, 60, seed=5, p_on=0.05, p_off=0.1, bad_quality=0.01)
    warnings, health = run_both(config, batches, ticks=[None] * 59 + [3_600_000])
    assert {e["check"] for e in health} >= {"stuck", "spike", "offline"}
    assert FAULT_RULE in {e.rule for e in warnings} and len(warnings) > 100


# -- the example configuration: every stage -----------------------------------------------------
def example_scenario() -> tuple[list[str], list[str], list[int], list[float], list[int]]:
    """Three days: a 3 h storm on the rain gauge, a GNSS point creeping 0 -> 60 mm, the pond
    rising to 351.5 m and falling back, gas excursions with an out-of-range reading."""
    readings: list[tuple[int, str, str, float]] = []
    for k in range(3 * 288):  # rain, 5 min
        readings.append((T0 + k * 300_000, "RG-001", "RAIN-5M", 12.0 if 24 <= k < 60 else 0.0))
    for k in range(3 * 144):  # tailings dam, 10 min
        t = T0 + k * 600_000
        readings.append((t, "TD-001", "GNSS-01", round(min(k, 300) * 0.2, 3)))
        readings.append((t, "TD-001", "WL-01", round(349.0 + 2.5 * min(k, 200) / 200 - 0.02 * max(0, k - 200), 3)))
    for k in range(400):  # gas, 5 s
        gas = 30.0 if 100 <= k < 140 else 12.0 if 200 <= k < 230 else 120.0 if k == 300 else 1.0
        readings.append((T0 + k * 5_000, "CH-001", "GT-101", gas))
    readings.sort(key=lambda r: r[0])
    return ([r[1] for r in readings], [r[2] for r in readings], [r[0] for r in readings],
            [r[3] for r in readings], [0] * len(readings))


@pytest.mark.parametrize("size", [1, 97, 5000])
def test_baseline_gives_the_engines_events_on_the_example_for_every_stage(size: int) -> None:
    config = baseline_scope(load_config(example_dir()))
    warnings, health = run_both(config, chunks(*example_scenario(), size=size))
    assert {e.rule for e in warnings} >= {"rainfall", "displacement_rate", "forecast", FAULT_RULE,
                                          "combustible_gas", "surface_displacement", "pond_level"}
    assert {e["check"] for e in health} == {"out_of_range"}


# -- a property: random readings around the rungs ------------------------------------------------
CONFIG = property_config()
PERIOD_MS = {(s.id, x.id): round(x.period_s * 1000) for s in CONFIG.sites for x in s.sensors}
PALETTE: dict[tuple[str, str], list[float]] = {
    ("CH-001", "GT-101"): [0.0, 1.0, 9.9, 10.0, 11.0, 23.0, 25.0, 27.0, 48.0, 50.0, 60.0, 100.0, 120.0, -3.0],
    ("CH-001", "LT-201"): [5.0, 8.4, 8.5, 8.6, 9.1, 9.2, 9.3, 12.5],
    ("TD-001", "PZ-01"): [6.0, 4.9, 4.8, 4.75, 4.4, 4.3, 4.0, 3.9, 3.95],
    ("TD-001", "WL-01"): [349.0, 349.5, 349.9, 350.0, 350.5, 350.8, 351.0, 351.3, 352.0, 361.0],
    ("TD-001", "GNSS-01"): [0.0, 1.0, 5.0, 10.0, 29.5, 30.0, 40.0, 50.0, 60.0, -600.0],
    ("RG-001", "RAIN-5M"): [0.0, 0.0, 0.5, 3.0, 10.0, 20.0, 35.0, 45.0, 80.0, 100.0, 150.0, -1.0],
    ("RG-001", "RAIN-CTR"): [0.0, 5.0, 20.0, 40.0, 60.0, 100.0, 300.0, 700.0],
}
STEP = [1, 1, 1, 1, 1, 2, 3, 0, -2, 12, 300]  # periods to the next reading: 0 repeats, < 0 is late


@st.composite
def series(draw: st.DrawFn, palette: list[float]) -> list[float]:
    """Values picked around the rungs, ramps between them, stuck runs and isolated spikes."""
    out: list[float] = []
    for kind in draw(st.lists(st.sampled_from(["pick", "ramp", "stuck", "spike"]), min_size=1, max_size=8)):
        if kind == "pick":
            out += draw(st.lists(st.sampled_from(palette), min_size=1, max_size=6))
        elif kind == "ramp":
            a, b, k = draw(st.sampled_from(palette)), draw(st.sampled_from(palette)), draw(st.integers(3, 30))
            out += [round(a + (b - a) * j / (k - 1), 3) for j in range(k)]
        elif kind == "stuck":
            out += [draw(st.sampled_from(palette))] * draw(st.integers(2, 6))
        else:
            base = out[-1] if out else palette[0]
            out += [base, draw(st.sampled_from(palette)), base]
    return out


@st.composite
def readings(draw: st.DrawFn) -> tuple[list[str], list[str], list[int], list[float], list[int]]:
    """Readings of 1-3 sensors, interleaved in arrival order, with repeats, late and bad-quality
    readings and a few of unknown sensors."""
    arrivals: list[tuple[int, str, str, int, float, int]] = []
    for key in draw(st.lists(st.sampled_from(sorted(PALETTE)), min_size=1, max_size=3, unique=True)):
        values = draw(series(PALETTE[key]))
        gaps = draw(st.lists(st.sampled_from(STEP), min_size=len(values), max_size=len(values)))
        bad = draw(st.lists(st.booleans(), min_size=len(values), max_size=len(values)))
        arrival = T0
        for v, gap, b in zip(values, gaps, bad):
            arrival += max(gap, 0) * PERIOD_MS[key]
            ts = arrival + min(gap, 0) * PERIOD_MS[key]
            arrivals.append((arrival, *key, ts, v, int(b and gap == 2)))
    for k in range(draw(st.integers(0, 2))):
        arrivals.append((T0 + k * 60_000, "CH-001", "GT-999", T0 + k * 60_000, 1.0, 0))
    arrivals.sort(key=lambda r: r[0])
    return ([r[1] for r in arrivals], [r[2] for r in arrivals], [r[3] for r in arrivals],
            [r[4] for r in arrivals], [r[5] for r in arrivals])


@settings(max_examples=150, deadline=None)
@given(data=readings(), size=st.sampled_from([1, 7, 1000]),
       tick=st.sampled_from([None, 0, 20_000, 1_800_000]))
def test_baseline_equals_the_engine_on_random_readings(
        data: tuple[list[str], list[str], list[int], list[float], list[int]], size: int, tick: int | None) -> None:
    """Around the rungs, with stuck runs, spikes, counter resets, gaps longer than the offline
    limit and the rain ring, repeats, late readings, bad quality, unknown sensors, any batch size
    and a clock tick after every batch: the same warnings, health events, rejects and counts."""
    batches = chunks(*data, size=size)
    run_both(CONFIG, batches, ticks=[tick] * len(batches))


# -- exactly at the rungs -------------------------------------------------------------------------
EDGES = baseline_scope(synthetic_config(10, sensors_per_site=3))  # one copy of each example sensor


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
    ts = [1_700_000_000_000 + k * step_ms for k in range(len(values))]
    run_both(config, chunks([site] * len(values), [sid] * len(values), ts, values, [0] * len(values), batch))


# -- the command ------------------------------------------------------------------------------------
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
              "window_buffer_bytes_per_sensor", "machine", "baseline_stages"):
        assert k in data, k
    assert data["engine_readings_per_s"] > 0 and data["baseline_readings_per_s"] > 0
    assert set(data["machine"]) >= {"cpu", "cores", "python", "numpy"}
    assert data["sensors"] == 1000 and data["readings"] > 3000
    assert data["baseline_stages"] == list(BASELINE_STAGES)
    if extra:
        assert orjson.loads(out.read_bytes()) == data


def test_bench_command_prints_a_table() -> None:
    app = typer.Typer()
    app.add_typer(bench_app, name="bench")
    result = CliRunner().invoke(app, ["bench", "rules", "--sensors", "200", "--batches", "2", "--repeats", "1",
                                      "--baseline-readings", "100"])
    assert result.exit_code == 0, result.output
    assert "engine readings/s" in result.stdout and "state bytes/sensor" in result.stdout
