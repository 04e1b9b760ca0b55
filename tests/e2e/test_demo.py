"""``hazwatch demo`` itself (what ``make demo`` runs): the whole pipeline comes up as processes,
the scenario's warnings, SMS and broadcasts are printed, the console answers with the printed
one-time password while the demo runs, and the demo stops by itself when the scenario is over."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import httpx
import orjson

from hazwatch.runtime import free_port
from tests.e2e.conftest import wait_until


def test_demo_runs_the_chemical_scenario_end_to_end_with_its_console(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hazwatch", "demo", "--json", "--scenario", "chemical", "--console-port", str(port),
         "--kafka", "tansu",  # the embedded default stays honest: every other end-to-end test runs on Apache Kafka
         "--workdir", str(tmp_path / "demo")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[dict] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            try:
                lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                lines.append({"type": "text", "text": raw.decode("utf-8", "replace")})

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        console = wait_until(lambda: next((x["console"] for x in lines if "console" in x), None), 120,
                             "the console line with its one-time password")
        assert console["url"] == f"http://127.0.0.1:{port}" and console["username"] == "demo"
        with httpx.Client(base_url=console["url"], trust_env=False, timeout=10) as client:
            csrf = client.get("/api/csrf").json()["csrf"]
            r = client.post("/api/login", json={"username": "demo", "password": console["password"]},
                            headers={"X-CSRF-Token": csrf})
            assert r.status_code == 200, r.text
            assert client.get("/api/me").json()["role"] == "operator"
            wait_until(lambda: any(w["level"] == "red" for w in client.get("/api/warnings").json()), 120,
                       "a red warning in the console while the demo runs")
        assert proc.wait(timeout=240) == 0
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    warnings = [x for x in lines if x.get("type") == "warning"]
    by_subject: dict[str, list[str]] = {}
    for w in warnings:
        if w["rule"] != "equipment_fault":
            by_subject.setdefault(w["subject"], []).append(w["level"])
    # the scenario's own expectations (sensors/scenarios/chemical.yaml, "# expect" lines)
    assert by_subject["CH-001/GT-101"] == ["yellow", "orange", "red", "normal"]
    assert by_subject["CH-001/LT-201"] == ["yellow", "red", "normal"]
    assert any(x.get("type") == "sms" and x["segments"] >= 1 for x in lines)
    broadcasts = [x for x in lines if x.get("type") == "broadcast"]
    assert any(x["status"] == "sent" and (x.get("cap") or "").startswith("<?xml") for x in broadcasts), \
        [(x["status"], x.get("kind"), x.get("suppressed_reason") or x.get("error")) for x in broadcasts]
    summary = [x for x in lines if "summary" in x]
    assert summary and summary[-1]["summary"]["sms"] > 0, lines[-5:]
