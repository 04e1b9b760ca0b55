"""A maintenance window created at run time reaches the rule engine on real brokers: the real CLI
stores the silence and publishes it on ``hazwatch.maintenance``; the faust worker keeps it in its
table, which brings it back after a SIGKILL; 60 %LEL on CH-001/GT-101 inside the window raises
nothing and a ``maintenance`` health event says why; once the window is ended, the same readings
raise red."""

from __future__ import annotations

import time

import orjson
import pytest
import typer
from kafka import KafkaConsumer
from typer.testing import CliRunner

from config.topics import HEALTH, WARNINGS
from hazwatch.cli_silences import silences_app
from hazwatch.kafka_admin import all_partitions
from tests.e2e.conftest import Pipeline, TopicReader, wait_until

SUBJECT = "CH-001/GT-101"
REASON = "更换GT-101探头 replacing the GT-101 sensor head"
CHANGELOG = "hazwatch-rules-maintenance-windows-changelog"  # faust: <app id>-<table>-changelog


def cli(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("HAZWATCH_DATABASE_URL", pipeline.stack.extra_env["HAZWATCH_DATABASE_URL"])
    monkeypatch.setenv("HAZWATCH_KAFKA_BOOTSTRAP", pipeline.stack.kafka_bootstrap)
    app = typer.Typer()
    app.add_typer(silences_app, name="silences")
    result = CliRunner().invoke(app, ["silences", *args, "--config", str(pipeline.config_dir)])
    assert result.exit_code == 0, result.output
    return result.output


def gas(pipeline: Pipeline, start_ms: int, values: list[float]) -> None:
    pipeline.publish([(f"hw/v1/{SUBJECT}/reading", orjson.dumps({"ts": start_ms + i * 5000, "v": v}))
                      for i, v in enumerate(values)])


def test_a_runtime_maintenance_window_holds_the_engine_and_its_end_releases_it(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    health = TopicReader(pipeline.stack.kafka_bootstrap, HEALTH)
    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    table = KafkaConsumer(bootstrap_servers=pipeline.stack.kafka_bootstrap, enable_auto_commit=False,
                          auto_offset_reset="earliest")
    table.assign(all_partitions(table, [CHANGELOG]))
    kept: list[list[dict]] = []

    def worker_keeps(check) -> bool:  # the worker's table, as its changelog shows it
        for recs in table.poll(timeout_ms=200).values():
            kept.extend(orjson.loads(r.value) for r in recs if r.key in (b"CH-001", b'"CH-001"'))
        return bool(kept) and check(kept[-1])

    try:
        out = cli(pipeline, monkeypatch, "add", "--site", "CH-001", "--subject", SUBJECT,
                  "--minutes", "30", "--maintenance", "--by", "李工", "--reason", REASON)
        assert "rule engine told" in out and SUBJECT in out, out
        silence_id = int(out.split()[1])
        wait_until(lambda: worker_keeps(lambda ws: [w for w in ws if w["id"] == silence_id and not w["ended"]]),
                   30, "the window in the worker's table")
        pipeline.restart("rules")  # SIGKILL: the window comes back from the table's changelog

        inside = int(time.time() * 1000)
        gas(pipeline, inside, [60.0, 60.5, 61.0, 60.2])  # red for 15 s, were it evaluated
        event = wait_until(lambda: [h for h in health.poll() if h.get("subject") == SUBJECT
                                    and h.get("check") == "maintenance"], 30, "the maintenance health event")[0]
        assert event["detail"]["reason"] == REASON
        assert event["detail"]["window"] == f"CH-001#silence-{silence_id}"
        assert event["ts"] == inside

        out = cli(pipeline, monkeypatch, "end", str(silence_id), "--by", "王主任")
        assert "the window ended" in out, out
        wait_until(lambda: worker_keeps(lambda ws: [w for w in ws if w["id"] == silence_id and w["ended"]]),
                   30, "the ended window in the worker's table")
        after = max(int(time.time() * 1000), inside + 20_000)
        gas(pipeline, after, [60.0, 60.5, 61.0, 60.2])

        def gas_warnings() -> list[dict]:
            return [w for w in warnings.poll() if w["subject"] == SUBJECT and w["rule"] == "combustible_gas"]

        wait_until(lambda: [w for w in gas_warnings() if w["level"] == "red"], 60, "red after the window")
        first = gas_warnings()[0]
        assert first["ts"] >= after, f"a warning from a reading inside the window: {first}"
        assert (first["kind"], first["level"]) == ("raised", "red")
        assert len([h for h in health.records if h.get("check") == "maintenance"]) == 1

        # the records again: as JSON lines for hazwatch replay --maintenance, and to Kafka (idempotent)
        (line,) = cli(pipeline, monkeypatch, "publish", "--all", "--print").splitlines()
        assert orjson.loads(line) == kept[-1][0] | {"ended": True}
        assert f"published 1 maintenance window(s) to the rule engine: {silence_id}" in cli(
            pipeline, monkeypatch, "publish", str(silence_id))
    finally:
        table.close()
        health.close()
        warnings.close()
