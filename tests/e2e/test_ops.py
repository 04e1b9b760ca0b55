"""Every service answers ``/metrics`` with counters that move while readings flow, and
``/healthz`` tells the truth: unhealthy, naming Kafka, while Kafka does not answer, healthy again
when it does (hazwatch/ops.py)."""

from __future__ import annotations

import signal
import time

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Pipeline, wait_until


def urls(pipeline: Pipeline) -> dict[str, str]:
    out = {name: f"http://127.0.0.1:{pipeline.procs[name].env['HAZWATCH_OPS_PORT']}" for name in ("ingest", "rules")}
    out["alerts"] = f"http://127.0.0.1:{pipeline.stack.extra_env['HAZWATCH_ALERTS_HTTP_PORT']}"
    return out


def scrape(url: str) -> dict[str, float]:
    """``name{label="value",...}`` -> value, for every sample of ``/metrics``."""
    text = httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def total(samples: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in samples.items() if k == prefix or k.startswith(prefix + "{"))


def healthz(url: str) -> tuple[int, dict]:
    r = httpx.get(f"{url}/healthz", timeout=30, trust_env=False)
    return r.status_code, orjson.loads(r.content)


def test_metrics_move_and_health_follows_kafka(pipeline: Pipeline) -> None:
    services = urls(pipeline)
    for name, url in services.items():
        status, body = healthz(url)
        assert (status, body["ok"], body["service"]) == (200, True, name), body

    now = int(time.time() * 1000)  # 60 %LEL held for 15 s: red (min_duration_s 10), and one bad payload
    pipeline.publish([("hw/v1/CH-001/GT-101/reading", orjson.dumps({"ts": now - 15_000 + 5_000 * k, "v": 60.0}))
                      for k in range(4)] + [("hw/v1/CH-001/GT-101/reading", b"{not json")])

    def moved() -> bool:
        ingest, rules, alerts = (scrape(services[n]) for n in ("ingest", "rules", "alerts"))
        return (total(ingest, "hazwatch_ingest_messages_total") >= 5
                and total(ingest, "hazwatch_ingest_readings_total") >= 4
                and ingest.get('hazwatch_ingest_rejected_total{reason="json"}', 0) >= 1
                and total(rules, "hazwatch_rules_readings_total") >= 4
                and rules.get('hazwatch_rules_warnings_total{kind="raised",level="red"}', 0) >= 1
                and total(alerts, "hazwatch_alerts_notifications") >= 1)

    wait_until(moved, 120, "the counters of ingest, rules and alerts to move")

    kafka = [p for p in pipeline.stack.processes if p.name.startswith("kafka") and p.alive()]
    for proc in kafka:
        assert proc.popen is not None
        proc.popen.send_signal(signal.SIGSTOP)
    try:
        for name, url in services.items():
            def down(url: str = url) -> bool:
                status, body = healthz(url)
                return status == 503 and body["checks"]["kafka"] is not None and not body["ok"]

            wait_until(down, 60, f"{name} to report Kafka unreachable")
    finally:
        for proc in kafka:
            assert proc.popen is not None
            proc.popen.send_signal(signal.SIGCONT)
    for name, url in services.items():
        wait_until(lambda url=url: healthz(url)[0] == 200, 120, f"{name} healthy again")
