"""The compiled loops of the rule stages (rules.kernels): numpy's summation order, the warm-up
compiling the very specialisations the batches use, and the evaluation order of a stage called
on readings that are not in time order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import example_dir, load_config
from hazwatch.bench_baseline_stages import numpy_sum
from hazwatch.bench_synthetic import synthetic_batches, synthetic_config
from rules import kernels
from rules.engine import Engine
from rules.rows import by_sensor_time
from rules.threshold import ThresholdEngine, ThresholdTable

ROOT = Path(__file__).resolve().parents[2]
floats = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


@settings(deadline=None)  # the first example may compile the function
@given(st.lists(floats, max_size=128))
def test_pairwise_sum_is_numpys_sum_to_the_bit(values: list[float]) -> None:
    a = np.asarray(values, dtype=np.float64)
    assert kernels.pairwise_sum(a) == numpy_sum(list(values)) == float(np.sum(a))


def test_warm_up_compiles_what_the_batches_use() -> None:
    config = synthetic_config(500)
    engine = Engine(config, started_ms=0)
    engine.warm_up()
    compiled = {name: list(getattr(kernels, name).signatures) for name in kernels.__all__}
    assert all(compiled.values()), compiled
    for batch in synthetic_batches(config, 3):
        engine.process(batch, int(batch.ts.max()))
    assert {name: list(getattr(kernels, name).signatures) for name in kernels.__all__} == compiled


def test_by_sensor_time_keeps_time_ordered_input_and_sorts_the_rest() -> None:
    assert by_sensor_time(np.array([3, 1, 2]), np.array([10, 10, 11])) is None
    order = by_sensor_time(np.array([1, 2, 1, 1]), np.array([30, 5, 10, 10]))
    assert order is not None
    assert order.tolist() == [2, 3, 0, 1]  # sensor 1 by ts, equal ts in arrival order; then sensor 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(1, 300), st.floats(0, 40)), min_size=1, max_size=80))
def test_any_arrival_order_is_evaluated_per_sensor_in_time_order(rows: list[tuple[int, int, float]]) -> None:
    """A stage given readings out of time order gives what it gives for the same readings sorted."""
    table = ThresholdTable.from_config(load_config(example_dir()))
    sensors = np.flatnonzero(table.row_count > 0)[:10]
    idx = np.array([sensors[k % len(sensors)] for k, _, _ in rows], dtype=np.int64)
    ts = np.array([1_700_000_000_000 + t * 1000 for _, t, _ in rows], dtype=np.int64)
    v = np.array([x for _, _, x in rows])
    shuffled = ThresholdEngine(table).process(idx, ts, v)
    order = np.lexsort((ts, idx))
    ordered = ThresholdEngine(table).process(idx[order], ts[order], v[order], ordered=True)
    assert shuffled == ordered


def test_without_a_writable_cache_the_loops_compile_in_memory(tmp_path) -> None:  # noqa: ANN001
    """numba refuses ``cache=True`` at import where it has no writable cache location (simulated
    here by allowing only the zip-file locator): the engine must still start and evaluate."""
    code = ("import numpy as np; from rules.kernels import threshold_loop; from rules.engine import Engine; "
            "from hazwatch.bench_synthetic import synthetic_config, synthetic_batches; c = synthetic_config(200); "
            "e = Engine(c, started_ms=0); e.warm_up(); b = synthetic_batches(c, 1)[0]; e.process(b, int(b.ts.max())); "
            "print(type(threshold_loop._cache).__name__, e.stats.evaluated)")
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    cache, evaluated = out.stdout.split()
    assert cache == "NullCache" and int(evaluated) > 300
