"""Threshold ladder, deadband and minimum duration: table-driven tests of the pure engine."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.models import Config, LadderStep, Sensor, Settings, Site, SmsSettings, ThresholdRule
from rules.threshold import ThresholdEngine, ThresholdTable


def make_config(direction: str = "high", deadband: float = 2.0, min_duration_s: float = 0.0,
                min_samples: int = 1) -> Config:
    values = {"high": (10, 25, 50), "low": (4.8, 4.4, 4.0)}[direction]
    rule = ThresholdRule(
        rule="r",
        direction=direction,
        ladder=[LadderStep(level=lv, value=v) for lv, v in zip(("yellow", "orange", "red"), values)],
        deadband=deadband if direction == "high" else 0.1,
        min_duration_s=min_duration_s,
        min_samples=min_samples,
    )
    sensor = Sensor(id="S1", quantity="combustible_gas" if direction == "high" else "phreatic_depth",
                    unit="%LEL" if direction == "high" else "m", period_s=5, thresholds=[rule])
    site = Site(id="X", name="x", kind="chemical", enterprise="e", region="320582", lat=30, lon=120,
                zone="Z", sensors=[sensor])
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), sites=[site],
                  zones=[], recipients=[])


def run(values, *, step_ms=5000, batch=1, **kw) -> list[tuple[str, str, int]]:
    """Feed values at 5 s steps; return (kind, level, ts) of every event."""
    cfg = make_config(**kw)
    engine = ThresholdEngine(ThresholdTable.from_config(cfg))
    out = []
    ts = np.arange(len(values), dtype=np.int64) * step_ms
    for i in range(0, len(values), batch):
        sl = slice(i, i + batch)
        for t in engine.process(np.zeros(len(values[sl]), dtype=np.int64), ts[sl], np.asarray(values[sl], float)):
            e = engine.to_event(t, emitted_at=0)
            out.append((e.kind, e.level, e.ts))
    return out


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([9.99], [], id="just-below-threshold"),
        pytest.param([10.0], [("raised", "yellow", 0)], id="exactly-at-threshold-raises"),
        pytest.param([0, 10, 25, 50, 0], [("raised", "yellow", 5000), ("escalated", "orange", 10000),
                                          ("escalated", "red", 15000), ("cleared", "normal", 20000)], id="ladder"),
        pytest.param([60, 30, 0], [("raised", "red", 0), ("deescalated", "orange", 5000),
                                   ("cleared", "normal", 10000)], id="jump-straight-to-red"),
        pytest.param([10, 8.5, 9.9, 8.1, 9.0, 10.5], [("raised", "yellow", 0)], id="oscillation-inside-deadband-no-flap"),
        pytest.param([10, 8.0, 9.0], [("raised", "yellow", 0)], id="exactly-at-deadband-edge-stays"),
        pytest.param([10, 7.99, 10], [("raised", "yellow", 0), ("cleared", "normal", 5000),
                                      ("raised", "yellow", 10000)], id="beyond-deadband-clears"),
    ],
)
def test_ladder_and_deadband(values, expected):
    assert run(values) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([30, 0, 0], [], id="spike-shorter-than-min-duration-raises-nothing"),
        pytest.param([30, 30, 0], [], id="two-samples-5s-apart-short-of-10s"),
        pytest.param([30, 30, 30, 0], [("raised", "orange", 10000), ("cleared", "normal", 15000)],
                     id="held-for-min-duration-raises"),
        pytest.param([30, 30, 5, 30, 30, 30], [("raised", "orange", 25000)], id="interrupted-run-restarts"),
        pytest.param([12, 12, 60, 60, 60], [("raised", "yellow", 10000), ("escalated", "red", 20000)],
                     id="escalation-needs-its-own-duration"),
    ],
)
def test_min_duration(values, expected):
    assert run(values, min_duration_s=10) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([30, 30], [], id="two-samples-short-of-three"),
        pytest.param([30, 30, 30, 0], [("raised", "orange", 10000), ("cleared", "normal", 15000)],
                     id="third-consecutive-sample-raises"),
        pytest.param([30, 30, 5, 30, 30], [], id="persistence-interrupted-by-one-sample"),
        pytest.param([30, 30, 5, 30, 30, 30], [("raised", "orange", 25000)], id="interrupted-run-restarts-the-count"),
        pytest.param([12, 60, 60, 60], [("raised", "yellow", 10000), ("escalated", "red", 15000)],
                     id="each-rung-counts-its-own-run"),
    ],
)
def test_persistence_as_consecutive_samples(values, expected):
    # a minimum duration of 0 leaves the sample count to decide
    assert run(values, min_samples=3) == expected
    assert run(values, batch=1000, min_samples=3) == expected


def test_tag_limits_map_onto_levels():
    rule = ThresholdRule.model_validate({"rule": "r", "limits": {"H": 25, "HH": 50}})
    assert (rule.direction, [(s.level, s.value, s.tag) for s in rule.ladder]) == (
        "high", [("orange", 25.0, "H"), ("red", 50.0, "HH")])
    low = ThresholdRule.model_validate({"rule": "r", "limits": {"LL": 1.0, "L": 2.0}, "tag_levels": {"L": "yellow"}})
    assert (low.direction, [(s.level, s.value) for s in low.ladder]) == ("low", [("yellow", 2.0), ("red", 1.0)])
    for bad, message in [({"limits": {"H": 25, "L": 5}}, "two rules"),
                         ({"limits": {"H": 25}, "ladder": [{"level": "red", "value": 1}]}, "not both"),
                         ({"limits": {"H": 25}, "direction": "low"}, "contradicts"),
                         ({"limits": {"H": 50, "HH": 25}}, "strictly increasing"),
                         ({"limits": {"X": 5}}, "limits")]:
        with pytest.raises(ValueError, match=message):
            ThresholdRule.model_validate({"rule": "r", **bad})


def test_a_minimum_duration_never_spans_a_data_gap():
    # 5 s period, offline after 3 periods: a 60 s silence restarts the 10 s run
    ts_gap = [0, 5000, 65000, 70000, 75000]
    cfg = make_config(min_duration_s=10)
    engine = ThresholdEngine(ThresholdTable.from_config(cfg))
    got = [(t.ts, t.level) for t in engine.process(np.zeros(5, dtype=np.int64), np.array(ts_gap),
                                                    np.array([30.0] * 5))]
    assert got == [(75000, 3)], "raised only after 10 s of readings on the far side of the gap"


def test_low_direction_rule():
    # phreatic burial depth: smaller is worse; deadband 0.1 m
    assert run([5.0, 4.8, 4.85, 4.4, 3.9, 4.95], direction="low") == [
        ("raised", "yellow", 5000), ("escalated", "orange", 15000), ("escalated", "red", 20000),
        ("cleared", "normal", 25000)]
    assert run([4.8, 4.89, 4.91], direction="low") == [("raised", "yellow", 0), ("cleared", "normal", 10000)]
    # exactly at the deadband edge (4.8 + 0.1, which is 4.8999999999999995 in floating point) stays
    assert run([4.8, 4.9], direction="low") == [("raised", "yellow", 0)]


def test_duplicate_and_stale_readings_change_nothing():
    cfg = make_config()
    engine = ThresholdEngine(ThresholdTable.from_config(cfg))
    idx = np.zeros(2, dtype=np.int64)
    assert len(engine.process(idx, np.array([0, 5000]), np.array([30.0, 30.0]))) == 1
    # the same readings again (Kafka redelivery after a crash): no event, no state change
    before = engine.state.export_rows([0])
    assert engine.process(idx, np.array([0, 5000]), np.array([30.0, 30.0])) == []
    assert engine.state.export_rows([0]) == before
    assert engine.ignored_stale == 2


def test_episode_id_is_stable_and_carried_to_clear():
    cfg = make_config()
    engine = ThresholdEngine(ThresholdTable.from_config(cfg))
    evs = [engine.to_event(t, 0) for t in engine.process(np.zeros(3, dtype=np.int64),
                                                          np.array([0, 5000, 10000]), np.array([60.0, 30.0, 0.0]))]
    assert len({e.episode for e in evs}) == 1
    assert evs[-1].detail["peak"] == "red"
    again = ThresholdEngine(ThresholdTable.from_config(cfg))
    assert again.to_event(again.process(np.zeros(1, dtype=np.int64), np.array([0]), np.array([60.0]))[0], 0).episode == evs[0].episode


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=80, allow_nan=False), min_size=1, max_size=60),
       st.sampled_from([1, 3, 7, 1000]))
def test_events_do_not_depend_on_batch_size(values, batch):
    assert run(values, batch=batch, min_duration_s=10) == run(values, batch=1, min_duration_s=10)
    assert run(values, batch=batch, min_samples=2) == run(values, batch=1, min_samples=2)


def test_state_survives_export_and_import():
    cfg = make_config()
    table = ThresholdTable.from_config(cfg)
    a = ThresholdEngine(table)
    a.process(np.zeros(2, dtype=np.int64), np.array([0, 5000]), np.array([30.0, 30.0]))
    b = ThresholdEngine(table)
    b.state.import_row(0, a.state.export_rows([0])[0])
    assert b.process(np.zeros(1, dtype=np.int64), np.array([10000]), np.array([0.0]))[0].previous == 3  # orange
