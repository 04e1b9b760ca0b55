"""Offline detection by the wall clock on real brokers: a sensor that simply stops publishing is
reported offline (health event + equipment-fault warning) without any further message, and back
online with its next reading."""

from __future__ import annotations

import time

import orjson

from config.topics import HEALTH, WARNINGS
from tests.e2e.conftest import Pipeline, TopicReader, wait_until


def test_a_silent_sensor_goes_offline_by_the_clock_and_comes_back(pipeline: Pipeline) -> None:
    health = TopicReader(pipeline.stack.kafka_bootstrap, HEALTH)
    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    try:
        sensor = pipeline.config.sensor("CH-001", "GT-101")
        assert sensor is not None
        offline_s = sensor.period_s * sensor.quality.offline_after_periods  # 5 s x 3
        now = int(time.time() * 1000)
        pipeline.publish([("hw/v1/CH-001/GT-101/reading", orjson.dumps({"ts": now - 10_000 + i * 5000, "v": 1.0}))
                          for i in range(3)])
        last_sent = time.monotonic()

        def offline() -> list[dict]:
            return [h for h in health.poll() if h.get("subject") == "CH-001/GT-101" and h.get("check") == "offline"]

        wait_until(offline, offline_s + 30, "the offline event")  # no message arrives meanwhile
        waited = time.monotonic() - last_sent
        assert waited >= offline_s - 1, f"reported after {waited:.1f} s, before {offline_s} s of silence"
        event = offline()[0]
        assert event["state"] == "fault"
        wait_until(lambda: [w for w in warnings.poll() if w["rule"] == "equipment_fault"
                            and w["subject"] == "CH-001/GT-101"], 30, "the equipment-fault warning")
        faults = [w for w in warnings.records if w["rule"] == "equipment_fault" and w["subject"] == "CH-001/GT-101"]
        assert faults[0]["kind"] == "raised"

        pipeline.publish([("hw/v1/CH-001/GT-101/reading", orjson.dumps({"ts": int(time.time() * 1000), "v": 1.0}))])
        wait_until(lambda: [h for h in health.poll() if h.get("subject") == "CH-001/GT-101"
                            and h.get("check") == "offline" and h.get("state") == "ok"], 30, "back online")
        wait_until(lambda: [w for w in warnings.poll() if w["rule"] == "equipment_fault"
                            and w["kind"] == "cleared"], 30, "the equipment fault cleared")
        assert len(offline()) == 2, "one fault and one recovery, no repeats"
    finally:
        health.close()
        warnings.close()
