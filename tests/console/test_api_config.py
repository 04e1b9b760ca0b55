"""``GET /api/config``: the loaded configuration for admins, secrets redacted, phone numbers
masked, and the configuration directory validated again on each request."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from alerts.store import Store
from config import example_dir, load_config
from config.checks import config_warnings
from console.api_config import REDACTED, hide_url_password, mask_phone
from console.app import create_app
from tests.console.conftest import Clock, login

TOKEN = "tw-auth-9f8e7d6c5b4a"
DB_PASSWORD = "pg-Pa55word-1e2d"
MQTT_PASSWORD = "mq-pw-77aa"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the example configuration (the test breaks it after the console started)."""
    return Path(shutil.copytree(example_dir(), tmp_path / "config"))


@pytest.fixture
def secret_client(config_dir: Path, console_store: Store, users) -> Iterator[TestClient]:
    """The console on a configuration with real-looking secrets: an SMS token, a database URL
    with a password (the store itself is the SQLite one of ``console_store``), an MQTT password."""
    config = load_config(config_dir, env={
        "TWILIO_AUTH_TOKEN": TOKEN,
        "HAZWATCH_DATABASE_URL": f"postgresql+psycopg://hazwatch:{DB_PASSWORD}@db.example:5432/hazwatch",
        "HAZWATCH_MQTT_URL": f"mqtt://ingest:{MQTT_PASSWORD}@mqtt.example:1883"})
    app = create_app(config, console_store, clock=Clock(), pages=False, config_dir=config_dir)
    with TestClient(app) as c:
        yield c


def test_admin_sees_the_configuration_with_secrets_redacted(secret_client: TestClient, config_dir: Path) -> None:
    login(secret_client, "admin")
    r = secret_client.get("/api/config")
    assert r.status_code == 200, r.text
    for secret in (TOKEN, DB_PASSWORD, MQTT_PASSWORD):
        assert secret not in r.text
    body = r.json()
    settings = body["settings"]
    assert settings["sms"]["auth_token"] == REDACTED
    assert settings["database"]["url"] == f"postgresql+psycopg://hazwatch:{REDACTED}@db.example:5432/hazwatch"
    assert settings["mqtt"]["url"] == f"mqtt://ingest:{REDACTED}@mqtt.example:1883"
    assert settings["sms"]["from_number"] == "+8610690000110"  # not a secret
    assert body["directory"] == str(config_dir)
    assert body["check"] == {"valid": True, "issues": [], "warnings": []}
    config = load_config(config_dir)
    assert body["fingerprint"] == config.sensor_fingerprint
    assert body["counts"] == {"sites": 16, "sensors": 32,
                              "rules": {"threshold": 23, "rate": 1, "rain": 9, "trend": 1, "site": 1},
                              "maintenance": 0, "zones": 15, "subscribers": 21, "recipients": 22}
    # sites with their sensors and rules, as configured
    ch = next(s for s in body["sites"] if s["id"] == "CH-001")
    gt = next(x for x in ch["sensors"] if x["id"] == "GT-101")
    rule = gt["thresholds"][0]
    assert [(s["level"], s["value"]) for s in rule["ladder"]] == [("yellow", 10), ("orange", 25), ("red", 50)]
    assert (rule["deadband"], rule["min_duration_s"], rule["source"]) == (2.0, 10, "STANDARDS GB/T 50493-2019 §5.5.2")
    td = next(s for s in body["sites"] if s["id"] == "TD-001")
    assert next(x for x in td["sensors"] if x["id"] == "GNSS-01")["rate"][0]["rule"] == "displacement_rate"
    assert {"site_rules", "maintenance"} <= ch.keys()
    # people: names and roles, phone numbers masked but for the last 4 digits
    wang = next(p for p in body["recipients"] if p["name"] == "值班员王磊")
    assert wang == {"name": "值班员王磊", "phone": "**********0001", "role": "operator", "enterprise": None,
                    "tier": None, "region": None, "language": "zh-CN"}
    assert all(p["phone"].startswith("*") for p in body["recipients"])
    assert not any(p.phone in r.text for p in config.recipients)
    assert not any(s.phone in r.text for z in config.zones for s in z.subscribers)
    assert {z["id"] for z in body["zones"]} == {z.id for z in config.zones}


def test_a_file_broken_after_start_shows_invalid(secret_client: TestClient, config_dir: Path) -> None:
    login(secret_client, "admin")
    sites = config_dir / "sites.yaml"
    sites.write_text(sites.read_text(encoding="utf-8").replace("period_s: 5\n", "period_s: -5\n", 1),
                     encoding="utf-8")
    body = secret_client.get("/api/config").json()
    assert body["check"] == {"valid": False, "warnings": [], "issues": [
        {"file": "sites.yaml", "path": "sites[0].sensors[0].period_s", "reason": "out of range: must be greater than 0, got -5"}]}
    # the console still shows what it loaded at start
    assert body["sites"][0]["sensors"][0]["period_s"] == 5
    sites.write_text("sites: [\n", encoding="utf-8")  # not YAML at all
    issue, = secret_client.get("/api/config").json()["check"]["issues"]
    assert issue["file"] == "sites.yaml" and issue["reason"].startswith("not valid YAML")


def test_check_config_warnings_show_beside_a_valid_check(secret_client: TestClient, config_dir: Path) -> None:
    login(secret_client, "admin")
    zones = config_dir / "zones.yaml"
    doc = yaml.safe_load(zones.read_text(encoding="utf-8"))
    doc["zones"][2]["subscribers"] = []  # Z-XIAHE-VILLAGE: nobody downstream of the dam would be texted
    zones.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    check = secret_client.get("/api/config").json()["check"]
    assert check["valid"] is True and check["issues"] == []
    expected = [{"file": i.file, "path": i.path, "reason": i.reason} for i in config_warnings(load_config(config_dir))]
    assert check["warnings"] == expected
    assert any(w["path"].startswith("zones[2]") for w in check["warnings"]), check["warnings"]


def test_only_admins_see_the_configuration(secret_client: TestClient) -> None:
    assert secret_client.get("/api/config").status_code == 401
    for name in ("op", "officer_ch"):
        secret_client.cookies.clear()
        login(secret_client, name)
        r = secret_client.get("/api/config")
        assert r.status_code == 403, (name, r.text)
        assert TOKEN not in r.text


def test_without_a_directory_there_is_no_check(client: TestClient, users) -> None:
    login(client, "admin")
    body = client.get("/api/config").json()
    assert body["directory"] is None and body["check"] is None
    assert json.dumps(body)  # plain JSON all through


def test_redaction_helpers() -> None:
    assert hide_url_password("sqlite:///hazwatch.db") == "sqlite:///hazwatch.db"
    assert hide_url_password("postgresql://u@h/db") == "postgresql://u@h/db"
    assert hide_url_password("postgresql://u:p%40ss@h:5/db") == f"postgresql://u:{REDACTED}@h:5/db"
    assert mask_phone("+8613800000001") == "**********0001"
