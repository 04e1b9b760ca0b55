"""Trend forecast: table-driven tests of the pure engine (ETA maths, hysteresis), and properties."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.models import Config, Sensor, Settings, Site, SmsSettings, ThresholdRule
from config.rules import TrendRule
from rules.trend import TrendEngine, TrendTable

T0 = 1_767_225_600_000
S = 1000
HIGH = {"rule": "lvl", "direction": "high", "ladder": [{"level": "yellow", "value": 10.0},
                                                        {"level": "orange", "value": 20.0},
                                                        {"level": "red", "value": 30.0}]}
LOW = {"rule": "depth", "direction": "low", "ladder": [{"level": "yellow", "value": 4.8},
                                                        {"level": "orange", "value": 4.4},
                                                        {"level": "red", "value": 4.0}]}


def make_config(threshold: dict | None = None, **rule: Any) -> Config:
    spec = {"window_s": 1200, "horizon_s": 1000, "min_points": 3} | rule
    sensor = Sensor(id="WL", quantity="pond_level", unit="m", period_s=600, trend=TrendRule.model_validate(spec),
                    thresholds=[ThresholdRule.model_validate(threshold or HIGH)])
    # the loader refuses a trend rule without a threshold rule; the engine must still cope
    bare = Sensor(id="NT", quantity="pond_level", unit="m", period_s=600, trend=TrendRule())
    site = Site(id="X", name="x", kind="tailings", enterprise="e", region="320582", lat=30, lon=120, zone="Z",
                sensors=[bare, sensor])
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), sites=[site], zones=[],
                  recipients=[])


def run(values: list[float], threshold: dict | None = None, **rule: Any) -> list[tuple[int, str, Any, Any]]:
    """Readings every 600 s -> [(seconds, level, round(eta_s), target_level)]."""
    eng = TrendEngine(TrendTable.from_config(make_config(threshold, **rule)))
    ts = T0 + np.arange(len(values), dtype=np.int64) * 600 * S
    out = [eng.to_event(t, 0) for t in eng.process(np.ones(len(ts), dtype=np.int64), ts, np.array(values))]
    return [((e.ts - T0) // S, e.level, None if e.detail["eta_s"] is None else round(e.detail["eta_s"], 1),
             e.detail["target_level"]) for e in out]


# window 1200 s and 600-s readings: three points, so the LS slope is (v_now - v_2ago) / 1200 s;
# horizon 1000 s, cleared at eta >= 1200 s.
CASES = [
    ("raised when eta < horizon", [0, 0, 6], {}, [(1200, "yellow", 800.0, "yellow")]),
    ("eta exactly the horizon raises nothing", [0, 0, 5.0], {"horizon_s": 1200}, []),
    ("too few points: nothing", [0, 6], {}, []),
    ("hysteresis: held in [horizon, 1.2 horizon), cleared at >= 1.2 horizon",
     [0, 0, 6, 6.5, 8.1, 8.2], {}, [(1200, "yellow", 800.0, "yellow"), (3000, "normal", 1270.6, "yellow")]),
    ("cleared exactly at 1.2 x horizon", [0, 0, 6, 6.5, 8.0], {}, [(1200, "yellow", 800.0, "yellow"),
                                                                 (2400, "normal", 1200.0, "yellow")]),
    ("slope turns: cleared with no eta", [0, 5, 6, 3], {}, [(1200, "yellow", 800.0, "yellow"),
                                                          (1800, "normal", None, "yellow")]),
    ("exactly at a rung: the target is the next one, 1200 s away", [0, 5, 10], {}, []),
    ("beyond red: nothing left to forecast", [31, 40, 50], {}, []),
    ("direction low: falling depth, target the yellow rung", [6.0, 5.8, 5.2], {"threshold": LOW},
     [(1200, "yellow", 600.0, "yellow")]),
    ("configured level", [0, 0, 6], {"level": "orange"}, [(1200, "orange", 800.0, "yellow")]),
    ("min_points 4 delays the fit", [0, 0, 6, 7], {"min_points": 4, "window_s": 1800},
     [(1800, "yellow", 666.7, "yellow")]),  # LS slope 0.0045/s
]


@pytest.mark.parametrize(("name", "values", "rule", "expected"), CASES, ids=[c[0] for c in CASES])
def test_trend_cases(name: str, values: list[float], rule: dict, expected: list) -> None:
    assert run(values, **rule) == expected


def test_at_a_rung_the_target_is_the_next_one() -> None:
    # at 10 (the yellow rung) with slope 10/1200 per s: orange at 20 is 1200 s away
    assert run([0, 5, 10], horizon_s=1300) == [(1200, "yellow", 1200.0, "orange")]


def test_least_squares_slope_and_event_shape() -> None:
    eng = TrendEngine(TrendTable.from_config(make_config(window_s=3600, horizon_s=36000, min_points=5)))
    values = [1.0, 1.5, 1.9, 2.6, 3.0]  # noisy ramp; LS slope over 4 x 600 s
    ts = T0 + np.arange(5, dtype=np.int64) * 600 * S
    (t,) = eng.process(np.ones(5, dtype=np.int64), ts, np.array(values))
    x = np.arange(5) * 600.0
    slope = np.polyfit(x, values, 1)[0]
    ev = eng.to_event(t, 7)
    assert ev.detail["slope_per_s"] == pytest.approx(slope, rel=1e-12)
    assert ev.detail["eta_s"] == pytest.approx((10 - 3.0) / slope, rel=1e-12)
    assert (ev.subject, ev.rule, ev.kind, ev.value, ev.threshold, ev.unit) == (
        "X/WL", "forecast", "raised", 3.0, 10.0, "m")
    assert ev.detail["points"] == 5 and ev.detail["target_value"] == 10.0 and ev.detail["horizon_s"] == 36000.0


def test_a_sensor_without_thresholds_is_skipped_and_stale_readings_ignored() -> None:
    table = TrendTable.from_config(make_config())
    assert table.skipped == ["X/NT"] and len(table) == 1
    eng = TrendEngine(table)
    assert eng.process(np.array([0, 0]), np.array([T0, T0 + 1]), np.array([1.0, 2.0])) == []
    eng.process(np.array([1]), np.array([T0]), np.array([1.0]))
    assert eng.process(np.array([1]), np.array([T0]), np.array([1.0])) == []
    assert eng.ignored_stale == 1


def test_gap_longer_than_the_window_is_not_evaluated() -> None:
    eng = TrendEngine(TrendTable.from_config(make_config()))
    ts = T0 + np.array([0, 600, 7200]) * S
    assert eng.process(np.ones(3, dtype=np.int64), ts, np.array([0.0, 1.0, 9.0])) == []


def test_no_line_is_fitted_across_a_data_gap() -> None:
    # a 6 h window would hold readings on both sides of a 1 h silence (offline after 30 min); the
    # ring is emptied at the gap, so the flat readings after it need 3 of their own before a fit
    # (across the gap, the 4-point line at 4800 s would have cleared with an ETA of 3444 s)
    eng = TrendEngine(TrendTable.from_config(make_config(window_s=21600)))
    ts = T0 + np.array([0, 600, 1200, 4800, 5400, 6000]) * S
    out = eng.process(np.ones(6, dtype=np.int64), ts, np.array([0.0, 0.0, 6.0, 6.0, 6.0, 6.0]))
    assert [((t.ts - T0) // S, t.level, t.points) for t in out] == [(1200, 2, 3), (6000, 0, 3)]


@pytest.mark.parametrize(("rule", "message"), [
    ({"min_points": 2}, "greater than or equal to 3"),
    ({"min_points": 65}, "less than or equal to 64"),
    ({"clear_factor": 0.9}, "greater than or equal to 1"),
    ({"level": "purple"}, "Input should be"),
])
def test_rule_validation(rule: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrendRule.model_validate(rule)


def _events(eng: TrendEngine, idx: np.ndarray, ts: np.ndarray, v: np.ndarray, size: int) -> list[bytes]:
    out = []
    for i in range(0, len(ts), size):
        out += [eng.to_event(t, 0).to_json() for t in eng.process(idx[i:i + size], ts[i:i + size], v[i:i + size])]
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 900), st.floats(-2, 3, allow_nan=False)), min_size=1, max_size=80),
       st.integers(0, 80))
def test_batch_size_and_restart_do_not_change_events(steps: list[tuple[int, float]], cut: int) -> None:
    ts = T0 + np.cumsum([d for d, _ in steps]) * S
    v = np.cumsum([x for _, x in steps])
    idx = np.ones(len(ts), dtype=np.int64)
    cfg = make_config(window_s=2400, horizon_s=1800, min_points=3)
    runs = [_events(TrendEngine(TrendTable.from_config(cfg)), idx, ts, v, n) for n in (1, 7, 1000)]
    assert runs[0] == runs[1] == runs[2]
    first = TrendEngine(TrendTable.from_config(cfg))
    got = _events(first, idx[:cut], ts[:cut], v[:cut], 7)
    saved = orjson.loads(orjson.dumps(first.export_site("X")))
    second = TrendEngine(TrendTable.from_config(cfg))
    second.import_site("X", saved)
    got += _events(second, idx[cut:], ts[cut:], v[cut:], 7)
    assert got == runs[0]


def test_the_ring_keeps_a_whole_window_at_its_spacing() -> None:
    """A window of 6,200 s is kept as readings 100 s apart (window / (RING - 2)): after 80 such
    readings the ring holds the last RING - 1 of them, the whole window, for the fit."""
    from rules.trend import RING

    eng = TrendEngine(TrendTable.from_config(make_config(window_s=6200, horizon_s=600)))
    ts = T0 + np.arange(80, dtype=np.int64) * 100 * S
    eng.process(np.ones(80, dtype=np.int64), ts, np.zeros(80))
    ring = eng.export_site("X")["WL|forecast"]["ring"]
    assert [int(t) for t, _ in ring] == ts[-len(ring):].tolist()
    assert len(ring) >= RING - 2 and int(ts[-1] - ring[0][0]) >= 6100 * S
