"""A reload asked for in the console reaches every service (console/reload.py, hazwatch/control.py):
on the real pipeline (ingest, rules, alerts and the console as processes, Apache Kafka, Mosquitto),
an admin changes a threshold and adds a recipient; after ``POST /api/config/reload`` each service
answers on the control topic, the next reading is judged by the new threshold, the warning already
raised is not raised again, the new recipient is texted, and the audit log says who and what."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.console.browser_fixtures import Console, console  # noqa: F401 - console is a fixture
# the end-to-end fixtures (tests/e2e/conftest.py is not a conftest of this directory)
from tests.e2e.conftest import TopicReader, kafka_nodes, pipeline, service_env, settings_patch, sites_edit, wait_until  # noqa: F401

from tests.e2e.test_reload import GasReadings

pytestmark = pytest.mark.e2e

NEW_OPERATOR = "+8613800000099"
PASSWORD = "reload-admin-pw-1"


def _edit(config_dir: Path) -> None:
    sites = config_dir / "sites.yaml"
    doc = yaml.safe_load(sites.read_text(encoding="utf-8"))
    sensor = next(x for x in doc["sites"][0]["sensors"] if x["id"] == "GT-101")
    next(r for r in sensor["thresholds"][0]["ladder"] if r["level"] == "orange")["value"] = 13
    sites.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    recipients = config_dir / "recipients.yaml"
    doc = yaml.safe_load(recipients.read_text(encoding="utf-8"))
    doc["recipients"].append({"name": "值班员新同事", "phone": NEW_OPERATOR, "role": "operator"})
    recipients.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_a_reload_asked_in_the_console_reaches_every_service(console: Console) -> None:  # noqa: F811
    p = console.pipeline
    console.add_user("chief", PASSWORD, "admin")
    gas = GasReadings(p)
    send, changes = gas.send, gas.changes
    try:
        send(0, 14.0)  # above yellow (10), below orange (25)
        wait_until(lambda: changes() == [("raised", "yellow")], 90, "the yellow warning")
        _edit(p.config_dir)
        with httpx.Client(base_url=console.url, timeout=30) as c:
            token = c.get("/api/csrf").json()["csrf"]
            r = c.post("/api/login", json={"username": "chief", "password": PASSWORD}, headers={"X-CSRF-Token": token})
            assert r.status_code == 200, r.text
            csrf = {"X-CSRF-Token": r.json()["csrf"]}
            r = c.post("/api/config/reload", headers=csrf)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["changes"] == ["sensor CH-001/GT-101 changed: thresholds.combustible_gas.ladder.orange.value 25 → 13",
                                       "recipient **********0099 (operator) added"]

            def answers() -> dict[str, str]:
                return {o["service"]: o["result"] for o in c.get("/api/config/reloads").json()
                        if o["request"] == body["request"]}
            wait_until(lambda: {"ingest", "rules", "alerts"} <= answers().keys(), 90, "every service's answer")
            assert answers() == {"console": "applied", "ingest": "applied", "rules": "applied", "alerts": "applied"}
            audit = [a for a in c.get("/api/audit").json() if a["action"] == "config_reload"]
            assert [(a["actor"], a["text"]) for a in audit] == [("chief", "; ".join(body["changes"]))]

        send(3, 14.0)  # the same value: orange now (13)
        wait_until(lambda: len(changes()) >= 2, 90, "the escalation")
        assert changes() == [("raised", "yellow"), ("escalated", "orange")]  # yellow not raised again
        wait_until(lambda: any(m["to"] == NEW_OPERATOR for m in p.sms()), 90, "the new operator's SMS")
        texts = [m["body"] for m in p.sms() if m["to"] == NEW_OPERATOR]
        assert len(texts) == 1 and "橙" in texts[0], texts
    finally:
        gas.close()
