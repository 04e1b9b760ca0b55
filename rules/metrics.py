"""The rules worker's Prometheus metrics (served on ``/metrics``: hazwatch/ops.py)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from rules.engine import Output

__all__ = ["BATCH_READINGS", "DEADLETTERS", "ENGINE_SECONDS", "LAG", "QUALITY", "READINGS", "SNAPSHOT_SECONDS",
           "WARNINGS", "emitted", "observe"]

READINGS = Counter("hazwatch_rules_readings_total", "Readings evaluated")
BATCH_READINGS = Histogram("hazwatch_rules_batch_readings", "Readings per evaluated micro-batch",
                           buckets=(1, 10, 100, 1000, 5000, 20_000, 100_000, 250_000))
ENGINE_SECONDS = Histogram("hazwatch_rules_engine_seconds", "Time the engine took for one micro-batch",
                           buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0))
LAG = Gauge("hazwatch_rules_lag_records", "Records of hazwatch.readings behind the partition's end, per partition",
            ["partition"])
WARNINGS = Counter("hazwatch_rules_warnings_total", "Warning events emitted, by level and kind", ["level", "kind"])
QUALITY = Counter("hazwatch_rules_quality_events_total", "Data-quality health events emitted (offline, stuck, "
                  "range, spike; state fault or ok)", ["check", "state"])
DEADLETTERS = Counter("hazwatch_rules_deadletters_total", "Records and readings the worker dead-lettered")
SNAPSHOT_SECONDS = Histogram("hazwatch_rules_snapshot_seconds", "Time a state snapshot took (written and acknowledged)",
                             buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))


def observe(readings: int, seconds: float, dead: int) -> None:
    """Count one evaluated micro-batch."""
    READINGS.inc(readings)
    BATCH_READINGS.observe(readings)
    ENGINE_SECONDS.observe(seconds)
    if dead:
        DEADLETTERS.inc(dead)


def emitted(out: Output) -> None:
    """Count the events of a batch or a clock tick, once they are in Kafka."""
    for event in out.warnings:
        WARNINGS.labels(event.level, event.kind).inc()
    for h in out.health:
        QUALITY.labels(str(h.get("check")), str(h.get("state"))).inc()
