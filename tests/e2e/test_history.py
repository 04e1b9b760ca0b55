"""The history writer keeps every reading and warning in a real store (VictoriaMetrics, through
influxdb-client's v2 write API), also those that arrive while the store is down for a while."""

from __future__ import annotations

import time

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from hazwatch.embedded_history import history_ready, victoria_metrics
from hazwatch.runtime import free_port
from history.reader import VictoriaMetricsReader
from tests.e2e.conftest import Pipeline, wait_until


def failures(ops_url: str) -> float:
    text = httpx.get(f"{ops_url}/metrics", timeout=10, trust_env=False).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "hazwatch_history_write_failures_total")


def readings(site: str, sensor: str, start_ms: int, n: int, v: float) -> list[tuple[str, bytes]]:
    return [(f"hw/v1/{site}/{sensor}/reading", orjson.dumps({"ts": start_ms + 1000 * k, "v": v}))
            for k in range(n)]


def test_readings_and_warnings_reach_the_store_through_an_outage(pipeline: Pipeline) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store = victoria_metrics(pipeline.stack.workdir, port).start()
    pipeline.stack.processes.append(store)
    wait_until(lambda: history_ready(url), 60, "VictoriaMetrics")
    ops_port = free_port()
    pipeline.start("history", "history", env={"HAZWATCH_HISTORY_URL": url, "HAZWATCH_OPS_PORT": str(ops_port)})
    ops = f"http://127.0.0.1:{ops_port}"
    reader = VictoriaMetricsReader(url)
    start = int(time.time() * 1000) - 120_000

    # 1. the store is up: 60 readings of two sensors, and a red warning (60 %LEL held for 10 s)
    before = readings("CH-001", "GT-101", start, 30, 60.0) + readings("TD-001", "PZ-01", start, 30, 10.0)
    pipeline.publish(before)
    wait_until(lambda: len(reader.readings("CH-001", "GT-101", start, start + 60_000)) == 30
               and len(reader.readings("TD-001", "PZ-01", start, start + 60_000)) == 30, 120, "the first readings")
    wait_until(lambda: any(s["metric"].get("level") == "red" for s in
                           reader.export('warning_level_rank{site="CH-001"}', start, start + 600_000)),
               120, "the red warning in the store")
    assert [v for _, v in reader.readings("CH-001", "GT-101", start, start + 60_000)] == [60.0] * 30

    # 2. the store stops; readings go on arriving; the writer keeps trying
    store.stop()
    during = readings("CH-001", "GT-101", start + 30_000, 30, 5.0)
    pipeline.publish(during)
    failed = failures(ops)
    wait_until(lambda: failures(ops) >= failed + 2, 120, "the writer to try again while the store is down")
    status = httpx.get(f"{ops}/healthz", timeout=30, trust_env=False)
    assert status.status_code == 503 and status.json()["checks"]["store"] is not None

    # 3. the store comes back: nothing is missing, nothing doubled
    store.start()
    wait_until(lambda: history_ready(url), 60, "VictoriaMetrics again")
    wait_until(lambda: len(reader.readings("CH-001", "GT-101", start, start + 120_000)) >= 60, 120,
               "the readings of the outage")
    got = reader.readings("CH-001", "GT-101", start, start + 120_000)
    assert [ts for ts, _ in got] == [start + 1000 * k for k in range(60)]
    assert [v for _, v in got] == [60.0] * 30 + [5.0] * 30
    assert httpx.get(f"{ops}/healthz", timeout=30, trust_env=False).status_code == 200
