"""The pipeline benchmark counts what it must: its load stamps every reading once, its latency
summary ranks correctly, and a loss injected through the real broker is seen."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from hazwatch.bench_pipeline import bench_pipeline, plan_step, ts_span
from hazwatch.bench_probe import percentiles


@pytest.mark.parametrize("shape", ["single", "batch"])
def test_a_step_stamps_every_reading_once_within_its_span(shape: str) -> None:
    sites, sensors, readings, start = ["LD-0001", "LD-0002", "LD-0003"], 4, 1_234, 1_000_000
    step = plan_step("s", shape, readings, 600.0, sites, sensors, start)
    seen = []
    for site, topic, payload in step.messages:
        body = orjson.loads(payload)
        if shape == "single":
            sensor = topic.split("/")[3]
            seen.append((site, sensor, body["ts"]))
        else:
            assert topic == f"hw/v1/{site}/batch"
            seen += [(site, r["sensor"], r["ts"]) for r in body["readings"]]
    assert len(seen) == len(set(seen)) == readings
    assert all(start <= ts < start + ts_span(readings, len(sites) * sensors) for _s, _x, ts in seen)
    assert step.rate == (600.0 if shape == "single" else 12.0)  # messages/s


def test_percentiles_are_nearest_rank() -> None:
    assert percentiles([]) == {"n": 0, "p50": None, "p99": None, "max": None}
    assert percentiles([float(v) for v in range(1, 101)]) == {"n": 100, "p50": 50, "p99": 99, "max": 100}
    assert percentiles([5.0, 1.0, 3.0]) == {"n": 3, "p50": 3, "p99": 5, "max": 5}


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="the injected loss needs Mosquitto's ACL")
def test_the_pipeline_benchmark_sees_an_injected_loss(tmp_path: Path) -> None:
    result = bench_pipeline(single_rates=[150], batch_rates=[], step_s=2, overload_s=0, sites=5, sensors=2,
                            kafka="tansu", workdir=tmp_path, inject_loss=7, log=lambda _m: None)
    (step,) = result["steps"]
    assert (step["readings"], step["acknowledged"], step["in_kafka"]) == (300, 300, 293)
    assert (step["lost"], step["duplicated"]) == (7, 0)
