"""The console's configuration reload (console/reload.py): ``POST /api/config/reload`` validates
the directory first and changes nothing when it does not validate; otherwise the configuration is
in force in the console at once, the live picture keeps the sensors that remain, and the audit log
records who reloaded and what changed. (The services' side, over the control topic, is tested end
to end in tests/e2e/test_reload.py.)"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from alerts.store import Store
from config import example_dir, load_config
from console.app import create_app
from console.live import LiveState
from console.reload import remap_live
from tests.console.conftest import Clock, login
from formats.readings import Readings

NOW = 1_800_000_000_000


def _edit_sites(directory: Path, edit) -> None:  # noqa: ANN001 - a function of the parsed YAML
    path = directory / "sites.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _orange(value: object):  # noqa: ANN202
    def edit(doc: dict) -> None:
        doc["sites"][0]["sensors"][0]["thresholds"][0]["ladder"][1]["value"] = value  # CH-001/GT-101
    return edit


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HAZWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'console.db'}")
    return Path(shutil.copytree(example_dir(), tmp_path / "config"))


@pytest.fixture
def client(config_dir: Path, console_store: Store, users) -> Iterator[TestClient]:  # noqa: ANN001
    app = create_app(load_config(config_dir), console_store, clock=Clock(), pages=False, config_dir=config_dir)
    with TestClient(app) as c:
        yield c


def _audit(client: TestClient) -> list[dict]:
    return [a for a in client.get("/api/audit").json() if a["action"].startswith("config_reload")]


def test_an_admin_reloads_a_changed_threshold_and_the_audit_says_who_and_what(
        client: TestClient, config_dir: Path) -> None:
    login(client, "admin")
    _edit_sites(config_dir, _orange(20))
    r = client.post("/api/config/reload")
    assert r.status_code == 200, r.text
    assert r.json() == {"applied": True, "changes": ["sensor CH-001/GT-101 changed: thresholds.combustible_gas.ladder.orange.value 25 → 20"], "issues": [],
                        "request": None}  # no Kafka here: nobody else to ask
    ladder = next(x for x in client.get("/api/config").json()["sites"][0]["sensors"]
                  if x["id"] == "GT-101")["thresholds"][0]["ladder"]
    assert [r["value"] for r in ladder] == [10, 20, 50]  # in force in the console
    entry, = _audit(client)
    assert (entry["actor"], entry["action"], entry["text"]) == (
        "admin", "config_reload", "sensor CH-001/GT-101 changed: thresholds.combustible_gas.ladder.orange.value 25 → 20")
    outcome, = client.get("/api/config/reloads").json()
    assert (outcome["service"], outcome["result"]) == ("console", "applied")


def test_a_configuration_that_does_not_validate_changes_nothing_and_says_why(
        client: TestClient, config_dir: Path) -> None:
    login(client, "admin")
    _edit_sites(config_dir, _orange("twenty"))
    r = client.post("/api/config/reload")
    assert r.status_code == 409
    body = r.json()
    assert body["applied"] is False and body["changes"] == []
    issue, = body["issues"]
    assert (issue["file"], issue["path"]) == ("sites.yaml", "sites[0].sensors[0].thresholds[0].ladder[1].value")
    ladder = next(x for x in client.get("/api/config").json()["sites"][0]["sensors"]
                  if x["id"] == "GT-101")["thresholds"][0]["ladder"]
    assert [r["value"] for r in ladder] == [10, 25, 50]  # the one in force stays
    entry, = _audit(client)
    assert (entry["actor"], entry["action"]) == ("admin", "config_reload_refused")
    assert "sites.yaml" in entry["text"] and "ladder[1].value" in entry["text"]


def test_a_change_that_needs_a_restart_is_refused(client: TestClient, config_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    login(client, "admin")
    monkeypatch.setenv("HAZWATCH_DATABASE_URL", f"sqlite:///{tmp_path / 'another.db'}")
    r = client.post("/api/config/reload")
    assert r.status_code == 409
    assert "restart the console" in r.json()["issues"][0]["reason"]


def test_only_admins_reload(client: TestClient) -> None:
    for name, code in (("op", 403), ("officer_ch", 403)):
        client.cookies.clear()
        login(client, name)
        assert client.post("/api/config/reload").status_code == code
    assert _audit(client) == []


def test_the_live_picture_keeps_the_sensors_that_remain(config_dir: Path) -> None:
    old = load_config(config_dir)
    live = LiveState(old, clock=lambda: NOW)
    for sensor, v in (("GT-101", 12.0), ("GT-102", 40.0)):
        live.ingest_readings(Readings(site="CH-001", sensor=[sensor] * 2, ts=[NOW - 60_000, NOW - 5_000],
                                      v=[v - 1, v], q=[0, 0]))

    def edit(doc: dict) -> None:
        sensors = doc["sites"][0]["sensors"]
        sensors.pop(0)  # GT-101 removed: GT-102 moves to another dense index
        sensors.append({**sensors[0], "id": "GT-199"})
    _edit_sites(config_dir, edit)
    new = load_config(config_dir)
    remap_live(live, new)
    assert ("CH-001", "GT-101") not in live.index and live.config is new
    kept = live.sensor("CH-001", "GT-102")
    assert (kept.value, kept.ts_ms) == (40.0, NOW - 5_000)
    assert [v for _, v in live.series("CH-001", "GT-102", NOW - 120_000)] == [39.0, 40.0]
    assert live.sensor("CH-001", "GT-199").value is None
    live.ingest_readings(Readings(site="CH-001", sensor=["GT-199"], ts=[NOW - 1_000], v=[3.0], q=[0]))
    assert live.sensor("CH-001", "GT-199").value == 3.0
    assert live.sensor("TD-001", "PZ-01").value is None  # untouched sensors elsewhere as they were
