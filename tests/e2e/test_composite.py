"""A composite tailings-dam rule on real brokers and worker processes: rainfall at orange or above
*and* a falling phreatic depth escalate the phreatic item by one level (issue "Rule engine").

The example dam TD-001 gets a rain gauge, a falling-depth rate rule on PZ-01 and the composite
rule; readings go in over MQTT; the composite warning comes out on ``hazwatch.warnings``, becomes
an episode in the alerts store and an SMS that names the rule."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest

from config.topics import WARNINGS
from tests.e2e.conftest import Pipeline, TopicReader, wait_until

COMPOSITE_NAME = "暴雨叠加浸润线上升"


def _add_rain_and_composite(sites: dict) -> None:
    dam = next(s for s in sites["sites"] if s["id"] == "TD-001")
    pz = next(s for s in dam["sensors"] if s["id"] == "PZ-01")
    pz["rate"] = [{"rule": "phreatic_fall", "window_s": 1200, "per_s": 3600, "direction": "low",
                   "ladder": [{"level": "yellow", "value": -0.3}]}]
    dam["sensors"].append({"id": "RG-TD", "quantity": "rain_increment", "unit": "mm", "period_s": 300,
                           "range": [0, 100],
                           "rain": {"rule": "rainfall", "windows": [{"hours": 1, "ladder": [
                               {"level": "yellow", "value": 20}, {"level": "orange", "value": 30},
                               {"level": "red", "value": 50}]}]}})
    dam["site_rules"] = [{"rule": "storm_seepage", "kind": "composite", "name": COMPOSITE_NAME,
                          "name_en": "storm with a rising phreatic line",
                          "all_of": [{"rule": "rainfall", "min_level": "orange"},
                                     {"sensor": "PZ-01", "rule": "phreatic_fall", "min_level": "yellow"}],
                          "escalate": {"sensor": "PZ-01", "rule": "phreatic_depth"}}]


@pytest.fixture
def sites_edit() -> Callable[[dict], None]:
    return _add_rain_and_composite


def test_rain_and_a_falling_phreatic_depth_escalate_the_item_on_real_brokers(pipeline: Pipeline) -> None:
    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    try:
        now = int(time.time() * 1000)
        m = 60_000

        def reading(sensor: str, minutes_ago: int, v: float) -> tuple[str, bytes]:
            return (f"hw/v1/TD-001/{sensor}/reading", orjson.dumps({"ts": now - minutes_ago * m, "v": v}))

        pipeline.publish([
            reading("PZ-01", 50, 5.0),
            reading("PZ-01", 40, 4.75),   # below the 4.8 m yellow rung
            reading("PZ-01", 30, 4.6),    # yellow after 10 min; falling 0.9 m/h -> phreatic_fall yellow
            reading("RG-TD", 25, 35.0),   # 35 mm in 1 h: rainfall orange -> composite: yellow + 1
            reading("PZ-01", 20, 4.3),    # below the 4.4 m orange rung
            reading("PZ-01", 10, 4.3),    # orange after 10 min, still falling -> composite red
        ])

        def composite() -> list[dict]:
            warnings.poll()
            return [w for w in warnings.records if w["rule"] == "storm_seepage"]

        wait_until(lambda: len(composite()) >= 2, 60, "the composite warning raised and escalated")
        got = composite()
        assert [(w["kind"], w["level"], w["ts"]) for w in got] == [
            ("raised", "orange", now - 25 * m), ("escalated", "red", now - 10 * m)]
        assert got[0]["subject"] == "TD-001/storm_seepage"
        assert got[0]["detail"]["escalates"] == "PZ-01|phreatic_depth"
        assert got[0]["detail"]["conditions"] == {"rainfall": True, "PZ-01|phreatic_fall": True}

        store = pipeline.store()
        from alerts.store import Episode

        def episode() -> Episode | None:
            with store.session() as s:
                return s.get(Episode, got[0]["episode"])

        wait_until(lambda: episode() is not None and episode().level == "red", 30, "the composite episode")
        wait_until(lambda: [x for x in pipeline.sms() if COMPOSITE_NAME in x["body"]], 60,
                   "an SMS that names the composite rule")
    finally:
        warnings.close()
