"""Rate-of-change rules: table-driven tests of the pure engine, and hypothesis properties."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.models import Config, Sensor, Settings, Site, SmsSettings, ThresholdRule
from config.rules import RateRule
from rules.rate import RateEngine, RateTable

T0 = 1_767_225_600_000
S = 1000


def make_config(**rule: Any) -> Config:
    spec = {"rule": "rate", "window_s": 3600, "per_s": 3600,
            "ladder": [{"level": "yellow", "value": 1.0}, {"level": "red", "value": 3.0}]} | rule
    sensor = Sensor(id="WL", quantity="pond_level", unit="m", period_s=600, rate=[RateRule.model_validate(spec)],
                    thresholds=[ThresholdRule(rule="lvl", ladder=[{"level": "red", "value": 1e6}])])
    other = Sensor(id="GT", quantity="combustible_gas", unit="%LEL", period_s=5)
    site = Site(id="X", name="x", kind="tailings", enterprise="e", region="320582", lat=30, lon=120, zone="Z",
                sensors=[other, sensor])
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), sites=[site], zones=[],
                  recipients=[])


def run(readings: list[tuple[float, float]], **rule: Any) -> list[tuple[float, str, float]]:
    """readings (seconds, value) of X/WL -> [(seconds, level, rate)]."""
    table = RateTable.from_config(make_config(**rule))
    eng = RateEngine(table)
    ts = np.array([T0 + round(t * S) for t, _ in readings], dtype=np.int64)
    out = eng.process(np.ones(len(ts), dtype=np.int64), ts, np.array([v for _, v in readings]))
    return [((t.ts - T0) / S, eng.to_event(t, 0).level, round(t.value, 9)) for t in out]


def steps(rates: list[float], period: float = 600) -> list[tuple[float, float]]:
    """Readings whose consecutive differences are ``rates`` (window = period, per_s = period)."""
    return [(i * period, float(v)) for i, v in enumerate(np.cumsum([0.0, *rates]))]


CASES = [
    # (name, readings, rule overrides, expected)
    ("exact rate: 0.1 m per 10 min is 0.6 m/h", [(0, 0.0), (600, 0.1), (1200, 0.2)],
     {"ladder": [{"level": "yellow", "value": 0.6}]}, [(600, "yellow", 0.6)]),
    ("window edge: a reading exactly window_s old is inside", [(0, 0.0), (600, 0.0), (1200, 1.0), (1800, 1.0),
                                                                (2400, 1.0)],
     {"window_s": 1200, "ladder": [{"level": "yellow", "value": 3.0}]}, [(1200, "yellow", 3.0), (2400, "normal", 0.0)]),
    ("first reading and a gap longer than the window give no rate", [(0, 0.0), (7200, 50.0), (7800, 50.0)],
     {}, []),
    ("exactly at the rung raises; inside the deadband holds; beyond clears",
     steps([1.0, 0.85, 0.81, 0.79]), {"window_s": 600, "per_s": 600, "deadband": 0.2},
     [(600, "yellow", 1.0), (2400, "normal", 0.79)]),
    ("escalates and de-escalates", steps([1.0, 3.0, 1.5, 0.0]), {"window_s": 600, "per_s": 600},
     [(600, "yellow", 1.0), (1200, "red", 3.0), (1800, "yellow", 1.5), (2400, "normal", 0.0)]),
    ("min duration: a short burst raises nothing", steps([2.0, 0.0, 2.0, 2.0, 2.0]),
     {"window_s": 600, "per_s": 600, "min_duration_s": 1200}, [(3000, "yellow", 2.0)]),
    ("direction low: falling is worse, rungs negative", steps([-1.5, -2.0, 0.0]),
     {"window_s": 600, "per_s": 600, "direction": "low",
      "ladder": [{"level": "yellow", "value": -1.0}, {"level": "orange", "value": -2.0}]},
     [(600, "yellow", -1.5), (1200, "orange", -2.0), (1800, "normal", 0.0)]),
    ("min span: no rate until the readings lie min_span_s apart", [(0, 0.0), (600, 5.0), (1200, 5.0)],
     {"min_span_s": 1200}, [(1200, "red", 15.0)]),
]


@pytest.mark.parametrize(("name", "readings", "rule", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rate_cases(name: str, readings: list, rule: dict, expected: list) -> None:
    assert run(readings, **rule) == expected


def test_short_period_is_subsampled_and_the_rate_stays_exact_for_a_ramp() -> None:
    # 10-s readings, 1 h window: the ring of 32 is subsampled but still spans the window
    readings = [(t, t / 3600 * 0.9) for t in range(0, 4 * 3600, 10)]
    out = run(readings, ladder=[{"level": "yellow", "value": 0.9}, {"level": "red", "value": 5.0}])
    assert [(lv, round(v, 6)) for _, lv, v in out] == [("yellow", 0.9)]
    table = RateTable.from_config(make_config())
    eng = RateEngine(table)
    ts = np.array([T0 + t * S for t, _ in readings], dtype=np.int64)
    eng.process(np.ones(len(ts), dtype=np.int64), ts, np.array([v for _, v in readings]))
    kept = eng.state.ring_ts[0][eng.state.ring_ts[0] > 0]
    assert ts[-1] - kept.min() >= 3600 * S


def test_stale_and_duplicate_readings_change_nothing() -> None:
    eng = RateEngine(RateTable.from_config(make_config()))
    one = np.ones(1, dtype=np.int64)
    eng.process(one, np.array([T0 + 600 * S]), np.array([0.0]))
    assert eng.process(one, np.array([T0 + 600 * S]), np.array([9.0])) == []
    assert eng.process(one, np.array([T0]), np.array([9.0])) == []
    assert eng.ignored_stale == 2


def test_event_shape() -> None:
    cfg = make_config(per_s=86400, window_s=86400, ladder=[{"level": "yellow", "value": 2}])
    eng = RateEngine(RateTable.from_config(cfg))
    # 12 h of 10-min readings (no gap) rising 1.5 m: 3 m/d
    ts = T0 + np.arange(73) * 600 * S
    out = eng.process(np.ones(73, dtype=np.int64), ts, np.linspace(0.0, 1.5, 73))
    ev = eng.to_event(out[0], emitted_at=5)
    assert (ev.subject, ev.rule, ev.kind, ev.level, ev.threshold, ev.unit) == (
        "X/WL", "rate", "raised", "yellow", 2.0, "m/d")
    assert ev.value == pytest.approx(3.0)
    assert ev.detail == {"window_s": 86400.0, "per_s": 86400.0, "peak": "yellow", "raised_ts": ev.ts,
                         "quantity": "pond_level", "direction": "high"}


def test_no_rate_is_taken_across_a_data_gap() -> None:
    # 10-min sensor, offline after 30 min: a 12 h silence empties the window
    cfg = make_config(per_s=86400, window_s=86400, ladder=[{"level": "yellow", "value": 2}])
    eng = RateEngine(RateTable.from_config(cfg))
    assert eng.process(np.array([1, 1]), np.array([T0, T0 + 43200 * S]), np.array([0.0, 1.5])) == []


@pytest.mark.parametrize(("rule", "message"), [
    ({"ladder": [{"level": "red", "value": 1}, {"level": "yellow", "value": 2}]}, "least to most severe"),
    ({"ladder": [{"level": "yellow", "value": 2}, {"level": "red", "value": 1}]}, "strictly increasing"),
    ({"direction": "low", "ladder": [{"level": "yellow", "value": 1}, {"level": "red", "value": 2}]},
     "strictly decreasing"),
    ({"deadband": 2.0}, "deadband 2 must be smaller"),
    ({"min_span_s": 7200}, "min_span_s 7200 must not exceed window_s 3600"),
    ({"window_s": 0}, "greater than 0"),
    ({"per_s": -1}, "greater than 0"),
])
def test_rule_validation(rule: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config(**rule)


@pytest.mark.parametrize(("per_s", "unit"), [(86400, "d"), (3600, "h"), (60, "min"), (1, "s"), (900, "900s")])
def test_per_unit(per_s: float, unit: str) -> None:
    assert RateRule(rule="r", window_s=60, per_s=per_s, ladder=[{"level": "red", "value": 1}]).per_unit == unit


readings_st = st.lists(st.tuples(st.integers(1, 900), st.floats(-3, 3, allow_nan=False)), min_size=1, max_size=80)


def _events(eng: RateEngine, idx: np.ndarray, ts: np.ndarray, v: np.ndarray, size: int) -> list[bytes]:
    out = []
    for i in range(0, len(ts), size):
        out += [eng.to_event(t, 0).to_json() for t in eng.process(idx[i:i + size], ts[i:i + size], v[i:i + size])]
    return out


@settings(max_examples=60, deadline=None)
@given(readings_st, st.integers(0, 80))
def test_batch_size_and_restart_do_not_change_events(steps_: list[tuple[int, float]], cut: int) -> None:
    ts = T0 + np.cumsum([d for d, _ in steps_]) * S
    v = np.cumsum([x for _, x in steps_])
    idx = np.ones(len(ts), dtype=np.int64)
    cfg = make_config(window_s=1800, deadband=0.3, min_duration_s=300)
    runs = [_events(RateEngine(RateTable.from_config(cfg)), idx, ts, v, n) for n in (1, 7, 1000)]
    assert runs[0] == runs[1] == runs[2]
    # split across a restart: export, JSON round trip, import into a fresh engine
    first = RateEngine(RateTable.from_config(cfg))
    got = _events(first, idx[:cut], ts[:cut], v[:cut], 7)
    saved = orjson.loads(orjson.dumps(first.export_site("X")))
    second = RateEngine(RateTable.from_config(cfg))
    second.import_site("X", saved)
    got += _events(second, idx[cut:], ts[cut:], v[cut:], 7)
    assert got == runs[0]


def test_a_minimum_duration_never_spans_a_data_gap() -> None:
    # 10-min sensor, offline after 3 periods: a 3 h silence restarts the rate ladder's 20-min run
    readings = [(0, 0.0), (600, 0.5), (1200, 1.0), (1200 + 3 * 3600, 10.0), (1800 + 3 * 3600, 10.5),
                (2400 + 3 * 3600, 11.0), (3000 + 3 * 3600, 11.5)]
    got = run(readings, window_s=600, per_s=600, min_duration_s=1200,
              ladder=[{"level": "yellow", "value": 0.5}])
    assert got == [(3000 + 3 * 3600, "yellow", 0.5)], "raised only after 20 min of rates beyond the gap"
