"""The services reload their configuration on SIGHUP (rules/reload.py, ingest, alerts): a threshold
changed while readings flow judges the next reading, and the warning already raised is not raised
again; a configuration that does not validate is refused and the one in force keeps working; a
sensor added is ingested and judged, and a recipient added is texted. (A reload asked for in the
console: tests/console/test_e2e_reload.py.)"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import orjson
import yaml
from sqlalchemy import select

from alerts.store import Action

from config.topics import WARNINGS
from tests.e2e.conftest import Pipeline, TopicReader, wait_until

NEW_OPERATOR = "+8613800000099"
SUBJECT = "CH-001/GT-101"  # combustible gas: yellow 10, orange 25, red 50 %LEL, held 10 s, every 5 s


def _set_rung(config_dir: Path, level: str, value: object) -> None:
    path = config_dir / "sites.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    site = next(s for s in doc["sites"] if s["id"] == "CH-001")
    sensor = next(s for s in site["sensors"] if s["id"] == "GT-101")
    rung = next(r for r in sensor["thresholds"][0]["ladder"] if r["level"] == level)
    rung["value"] = value
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


class GasReadings:
    """Readings of :data:`SUBJECT` three at a time, 5 s apart (a level held 10 s), from a minute
    ago, and the combustible-gas level changes they gave on ``hazwatch.warnings``."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.start = int(time.time() * 1000) - 60_000
        self.warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)

    def send(self, first: int, value: float) -> None:
        self.pipeline.publish([(f"hw/v1/{SUBJECT}/reading", orjson.dumps({"ts": self.start + i * 5000, "v": value}))
                               for i in range(first, first + 3)])

    def changes(self) -> list[tuple[str, str]]:
        return [(w["kind"], w["level"]) for w in self.warnings.poll()
                if w["subject"] == SUBJECT and w["rule"] == "combustible_gas"]

    def close(self) -> None:
        self.warnings.close()


def _reloads_of(pipeline: Pipeline, service: str, result: str) -> float:
    port = pipeline.procs[service].env["HAZWATCH_OPS_PORT"]
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith(f'hazwatch_config_reloads_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_threshold_changed_on_sighup_judges_the_next_reading_and_nothing_is_raised_twice(
        pipeline: Pipeline) -> None:
    gas = GasReadings(pipeline)
    send, changes = gas.send, gas.changes
    rules = pipeline.procs["rules"].popen
    assert rules is not None
    try:
        send(0, 14.0)  # above yellow (10)
        wait_until(lambda: changes() == [("raised", "yellow")], 90, "the yellow warning")

        _set_rung(pipeline.config_dir, "orange", "twelve")  # does not validate
        rules.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads_of(pipeline, "rules", "refused") == 1, 60, "the refused reload")

        _set_rung(pipeline.config_dir, "orange", 13)  # orange from 25 %LEL down to 13
        rules.send_signal(signal.SIGHUP)
        wait_until(lambda: _reloads_of(pipeline, "rules", "applied") == 1, 60, "the reload")
        send(3, 14.0)  # the same value: orange now
        wait_until(lambda: len(changes()) >= 2, 90, "the escalation")
        assert changes() == [("raised", "yellow"), ("escalated", "orange")]
        send(6, 55.0)  # and the worker goes on: red (50) as before
        wait_until(lambda: len(changes()) >= 3, 90, "the red escalation")
        assert changes() == [("raised", "yellow"), ("escalated", "orange"), ("escalated", "red")]
    finally:
        gas.close()


def test_a_sensor_and_a_recipient_added_on_sighup_are_ingested_judged_and_texted(pipeline: Pipeline) -> None:
    path = pipeline.config_dir / "sites.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    site = next(s for s in doc["sites"] if s["id"] == "CH-001")
    site["sensors"].append({**next(s for s in site["sensors"] if s["id"] == "GT-101"), "id": "GT-199"})
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    path = pipeline.config_dir / "recipients.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["recipients"].append({"name": "值班员新同事", "phone": NEW_OPERATOR, "role": "operator"})
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for service in ("ingest", "rules", "alerts"):
        popen = pipeline.procs[service].popen
        assert popen is not None
        popen.send_signal(signal.SIGHUP)
    for service in ("ingest", "rules"):
        wait_until(lambda s=service: _reloads_of(pipeline, s, "applied") == 1, 60, f"{service}'s reload")
    store = pipeline.store()  # alerts records a reload by SIGHUP in the audit table, with what changed
    try:
        def recorded() -> list[tuple[str, str | None]]:
            with store.session() as s:
                return [(a.actor, a.text) for a in s.scalars(select(Action).where(Action.action == "config_reload"))]
        wait_until(recorded, 60, "alerts' reload")
        assert recorded() == [("SIGHUP", "sensor CH-001/GT-199 added; recipient **********0099 (operator) added")]
    finally:
        store.engine.dispose()

    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    try:
        start = int(time.time() * 1000) - 30_000
        pipeline.publish([("hw/v1/CH-001/GT-199/reading", orjson.dumps({"ts": start + i * 5000, "v": 30.0}))
                          for i in range(3)])  # orange (25), held 10 s
        def new() -> list[tuple[str, str]]:
            return [(w["kind"], w["level"]) for w in warnings.poll()
                    if w["subject"] == "CH-001/GT-199" and w["rule"] == "combustible_gas"]

        wait_until(new, 90, "its warning")
        assert new() == [("raised", "orange")]
        wait_until(lambda: any(m["to"] == NEW_OPERATOR for m in pipeline.sms()), 90, "the new operator's SMS")
        assert ["GT-199" in m["body"] for m in pipeline.sms() if m["to"] == NEW_OPERATOR] == [True]
    finally:
        warnings.close()
