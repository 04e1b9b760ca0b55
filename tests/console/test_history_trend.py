"""A site's trend beyond the live view's 24 h comes from the history store: a real VictoriaMetrics,
written through influxdb-client as the history writer writes, read through history/reader.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from alerts.store import Store
from config import Config
from console.app import create_app
from hazwatch.embedded_history import history_ready, victoria_metrics
from hazwatch.runtime import Process, free_port, wait_for
from history.reader import VictoriaMetricsReader
from tests.console.conftest import Clock, login

pytestmark = pytest.mark.skipif(shutil.which("victoria-metrics") is None and not os.environ.get("CI"),
                                reason="victoria-metrics is not installed (.ci/run installs it)")

HOUR_MS = 3_600_000


@pytest.fixture
def store_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc: Process = victoria_metrics(tmp_path, port).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: history_ready(url), 60, "VictoriaMetrics")
        yield url
    finally:
        proc.stop()


def test_thirty_days_come_from_the_store_and_six_hours_from_the_live_view(
        store_url: str, console_config: Config, console_store: Store, clock: Clock, users: dict) -> None:
    now = clock.ms()
    # a reading every 10 minutes for 20 days, with one peak of 95 %LEL twelve days ago
    times = list(range(now - 20 * 24 * HOUR_MS, now, 600_000))
    peak = times[len(times) * 2 // 5]
    lines = [f"reading,site=CH-001,sensor=GT-101 q=0i,v={95 if t == peak else 1 + (t // 600_000) % 5} {t}"
             for t in times]
    with InfluxDBClient(url=store_url, token="", org="hazwatch") as client:
        client.write_api(write_options=SYNCHRONOUS).write("hazwatch", "hazwatch", "\n".join(lines).encode(),
                                                          write_precision=WritePrecision.MS)
    reader = VictoriaMetricsReader(store_url)  # what was written is searchable after the store's next flush
    wait_for(lambda: len(reader.readings("CH-001", "GT-101", times[0], now)) == len(times), 60, "the readings")
    app = create_app(console_config, console_store, clock=clock, pages=False, history=reader)
    with TestClient(app) as client:
        login(client, "op")
        month = client.get("/api/sites/CH-001/series", params={"sensor": "GT-101", "hours": 720}).json()
        assert month["source"] == "history"
        assert len(month["points"]) == 2000  # 2,880 readings, thinned to each bucket's min and max
        assert month["points"][0][0] == times[0] and (peak, 95.0) in [tuple(p) for p in month["points"]]
        assert [p[0] for p in month["points"]] == sorted(p[0] for p in month["points"])
        week = client.get("/api/sites/CH-001/series", params={"sensor": "GT-101", "hours": 168}).json()
        assert week["source"] == "history" and week["points"][0][0] >= now - 168 * HOUR_MS
        live = client.get("/api/sites/CH-001/series", params={"sensor": "GT-101", "hours": 6}).json()
        assert live["source"] == "live" and live["points"] == []  # nobody fed the live view


def test_a_store_that_does_not_answer_leaves_the_live_trend(console_config: Config, console_store: Store,
                                                             clock: Clock, users: dict) -> None:
    down = VictoriaMetricsReader(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with TestClient(create_app(console_config, console_store, clock=clock, pages=False, history=down)) as client:
        login(client, "op")
        r = client.get("/api/sites/CH-001/series", params={"sensor": "GT-101", "hours": 720})
        assert r.status_code == 200 and r.json()["source"] == "live"
