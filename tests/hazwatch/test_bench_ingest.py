"""The ingest benchmark counts what it must: a loss injected through the real broker is seen."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hazwatch.bench_ingest import bench_ingest


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="the injected loss needs Mosquitto's ACL")
def test_the_benchmark_sees_an_injected_loss(tmp_path: Path) -> None:
    result = bench_ingest(readings=300, inject_loss=7, kafka="tansu", workdir=tmp_path, log=lambda _m: None)
    assert (result["acknowledged_messages"], result["in_kafka"]) == (300, 293)
    assert (result["lost"], result["duplicated"]) == (7, 0)
