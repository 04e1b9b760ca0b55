"""Maintenance and calibration windows in the rule engine: readings inside raise and clear
nothing, a health event says why, and no offline fault is reported while a window is open."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from config.models import Config, Settings, Site, SmsSettings
from rules.engine import Batch, Engine

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
S = 1000
LADDER = [{"level": "yellow", "value": 20}, {"level": "red", "value": 50}]


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp((T0 + seconds * S) / 1000, dt.UTC).isoformat()


def make_config(windows: list[dict[str, Any]]) -> Config:
    sensors = [{"id": sid, "quantity": "combustible_gas", "unit": "%LEL", "period_s": 10,
                "thresholds": [{"rule": "gas", "ladder": LADDER}]} for sid in ("G1", "G2")]
    site = Site.model_validate({"id": "X", "name": "x", "kind": "chemical", "enterprise": "e", "region": "320582",
                                "lat": 30, "lon": 120, "zone": "Z", "sensors": sensors, "maintenance": windows})
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), sites=[site], zones=[],
                  recipients=[])


CALIBRATION = {"kind": "calibration", "sensors": ["G1"], "start": iso(100), "end": iso(200),
               "reason": "季度标定 quarterly calibration with 50 %LEL test gas"}


def feed(eng: Engine, readings: list[tuple[float, str, float]], now_s: float = 0) -> tuple[list, list]:
    b = Batch(["X"] * len(readings), [r[1] for r in readings],
              np.array([T0 + round(r[0] * S) for r in readings], dtype=np.int64),
              np.array([r[2] for r in readings], dtype=np.float64), np.zeros(len(readings), dtype=np.int64))
    out = eng.process(b, T0 + round(now_s * S))
    return ([((e.ts - T0) / S, e.subject, e.level) for e in out.warnings], out.health)


def test_readings_inside_a_window_raise_nothing_and_a_health_event_says_why() -> None:
    eng = Engine(make_config([CALIBRATION]), started_ms=T0)
    warnings, health = feed(eng, [(90, "G1", 0), (100, "G1", 50), (110, "G1", 55), (150, "G2", 55)])
    assert warnings == [(150, "X/G2", "red")]  # G2 is not under calibration
    assert [(h["subject"], h["check"], h["state"], h["ts"]) for h in health] == [
        ("X/G1", "maintenance", "start", T0 + 100 * S)]
    assert health[0]["detail"]["reason"].startswith("季度标定")
    assert health[0]["detail"]["kind"] == "calibration"
    assert eng.stats.maintenance == 2
    # the window ends at 200 (exclusive): the reading at 200 is evaluated
    warnings, health = feed(eng, [(199, "G1", 55), (200, "G1", 55)])
    assert warnings == [(200, "X/G1", "red")] and health == []


def test_a_warning_open_before_the_window_is_neither_cleared_nor_raised_inside_it() -> None:
    eng = Engine(make_config([CALIBRATION]), started_ms=T0)
    assert feed(eng, [(90, "G1", 30)])[0] == [(90, "X/G1", "yellow")]
    assert feed(eng, [(120, "G1", 0), (130, "G1", 60)])[0] == []
    assert feed(eng, [(210, "G1", 0)])[0] == [(210, "X/G1", "normal")]


def test_a_site_window_covers_every_sensor_and_is_announced_once_per_sensor() -> None:
    window = {"start": iso(0), "end": iso(1000), "reason": "停车检修 shutdown"}
    eng = Engine(make_config([window]), started_ms=T0)
    warnings, health = feed(eng, [(10, "G1", 60), (10, "G2", 60), (20, "G1", 60)])
    assert warnings == []
    assert [(h["subject"], h["detail"]["kind"]) for h in health] == [("X/G1", "maintenance"), ("X/G2", "maintenance")]


def test_no_offline_fault_while_a_window_is_open_and_silence_counts_from_its_end() -> None:
    eng = Engine(make_config([CALIBRATION]), started_ms=T0)
    feed(eng, [(0, "G1", 0), (0, "G2", 0)], now_s=0)
    # offline after 3 periods = 30 s of silence; G1 is under calibration from 100 to 200
    offline = lambda now_s: sorted(h["subject"] for h in eng.tick(T0 + now_s * S).health  # noqa: E731
                                   if h["check"] == "offline")
    assert offline(150) == ["X/G2"]
    assert offline(220) == []  # 20 s after the window's end
    assert offline(231) == ["X/G1"]


def test_announcements_survive_a_restart() -> None:
    config = make_config([CALIBRATION])
    first = Engine(config, started_ms=T0)
    assert len(feed(first, [(100, "G1", 50)])[1]) == 1
    second = Engine(config, started_ms=T0)
    second.import_site("X", orjson.loads(orjson.dumps(first.export_site("X"))))
    assert feed(second, [(110, "G1", 50)])[1] == []


@pytest.mark.parametrize(("window", "message"), [
    (CALIBRATION | {"sensors": ["G9"]}, "unknown sensor 'G9'"),
    (CALIBRATION | {"end": iso(100)}, "must be before end"),
    (CALIBRATION | {"start": "2026-01-01T00:00:00"}, "timezone"),
    (CALIBRATION | {"reason": ""}, "at least 1 character"),
])
def test_bad_windows_are_explained(window: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config([window])
