"""The console's Kafka reader and the ``hazwatch console`` process on a real Kafka-protocol broker
(EmbeddedStack: Tansu), waiting on content, never on time."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaProducer

from config import example_dir, load_config
from config.topics import HEALTH, READINGS, WARNINGS
from console.live import LiveState
from console.live_reader import LiveReader
from console.service import start_console
from console.users import UserService
from alerts.store import Store
from hazwatch.runtime import EmbeddedStack
from tests.e2e.conftest import wait_until

pytestmark = pytest.mark.e2e
H = 3_600_000


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack"), disposable=True) as s:
        yield s


def _send(producer: KafkaProducer, topic: str, site: str, value: dict, ts_ms: int | None = None) -> None:
    producer.send(topic, key=site.encode(), value=orjson.dumps(value), timestamp_ms=ts_ms).get(10)


def test_reader_rebuilds_the_last_24_h_and_follows(stack: EmbeddedStack) -> None:
    now = int(time.time() * 1000)
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
    # history: one reading from two days ago (outside the window), one from an hour ago
    _send(producer, READINGS, "TD-001", {"site": "TD-001", "sensor": ["PZ-01"], "ts": [now - 48 * H],
                                         "v": [99.0], "q": [0]}, ts_ms=now - 48 * H)
    _send(producer, READINGS, "TD-001", {"site": "TD-001", "sensor": ["PZ-01"], "ts": [now - H],
                                         "v": [4.5], "q": [0]}, ts_ms=now - H)
    _send(producer, WARNINGS, "CH-001", {
        "episode": "e2e-1", "site": "CH-001", "subject": "CH-001/GT-101", "rule": "combustible_gas",
        "kind": "raised", "level": "orange", "previous": "normal", "ts": now - H,
        "emitted_at": now - H, "value": 30.0, "threshold": 25.0, "unit": "%LEL", "detail": {}},
        ts_ms=now - H)
    producer.send(READINGS, key=b"CH-001", value=b"not json").get(10)  # undecodable: skipped
    live = LiveState(load_config(example_dir(), env={}))
    reader = LiveReader(stack.kafka_bootstrap, live).start()
    try:
        wait_until(lambda: live.sensor("TD-001", "PZ-01").value == 4.5, 60, "the history reading")
        wait_until(lambda: live.site_level("CH-001") == "orange", 30, "the history warning")
        assert [v for _, v in live.series("TD-001", "PZ-01", now - 72 * H)] == [4.5]
        assert live.first_ms is not None and live.first_ms >= now - 25 * H  # sought past the old one
        # then it follows: a new reading and a health event
        _send(producer, READINGS, "TD-001", {"site": "TD-001", "sensor": ["PZ-01"],
                                             "ts": [now], "v": [4.25], "q": [0]})
        _send(producer, HEALTH, "CH-001", {"site": "CH-001", "subject": "CH-001/GT-102",
                                           "sensor": "GT-102", "check": "stuck", "state": "fault",
                                           "ts": now, "detected_at": now, "detail": {"active": ["stuck"]}})
        wait_until(lambda: live.sensor("TD-001", "PZ-01").value == 4.25, 30, "the new reading")
        wait_until(lambda: live.sensor("CH-001", "GT-102").fault == "stuck", 30, "the health event")
        assert live.errors == 1
    finally:
        reader.stop()
        producer.close()


def test_console_process_serves_the_live_picture(stack: EmbeddedStack, tmp_path: Path) -> None:
    """How a test starts the console: ``start_console(stack, config_dir)`` (docs/CONSOLE.md)."""
    db = f"sqlite:///{tmp_path / 'console.db'}"
    store = Store(db)
    UserService(store).add("op", "operator password", "operator")
    store.engine.dispose()
    stack.extra_env = {**stack.extra_env, "HAZWATCH_DATABASE_URL": db}
    proc, url = start_console(stack, example_dir())
    try:
        now = int(time.time() * 1000)
        producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all")
        _send(producer, READINGS, "RG-001", {"site": "RG-001", "sensor": ["RAIN-5M"], "ts": [now],
                                             "v": [1.5], "q": [0]})
        producer.close()
        with httpx.Client(base_url=url, trust_env=False) as c:
            csrf = c.get("/api/csrf").json()["csrf"]
            r = c.post("/api/login", json={"username": "op", "password": "operator password"},
                       headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200, r.text

            def rain() -> object:
                sensors = c.get("/api/sites/RG-001").json()["sensors"]
                return next(s for s in sensors if s["id"] == "RAIN-5M")["value"] == 1.5

            wait_until(rain, 60, "the reading in /api/sites/RG-001")
            # a browser left open on the live stream must not hold the console's stop
            opened = threading.Event()

            def follow() -> None:
                with contextlib.suppress(httpx.HTTPError), httpx.Client(
                        base_url=url, cookies=c.cookies, timeout=30, trust_env=False) as browser, \
                        browser.stream("GET", "/api/events") as events:
                    for _line in events.iter_lines():
                        opened.set()

            threading.Thread(target=follow, daemon=True).start()
            assert opened.wait(30), "the event stream did not open"
            proc.stop()  # SIGTERM; SIGKILL only if it is still running 10 s later
            # uvicorn stops cleanly and then ends by the signal it caught (-15), not by SIGKILL
            assert proc.popen is not None and proc.popen.returncode in (0, -signal.SIGTERM), proc.log_tail()
    finally:
        proc.stop()
    assert "Traceback" not in proc.log_text()
