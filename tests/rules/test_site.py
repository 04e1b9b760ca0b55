"""Site rules (k-of-n voting, GB 39496 aggregation, composites): table-driven tests through the
whole engine, configuration errors, and hypothesis properties (batch size, restart)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.models import Config, Settings, Site, SmsSettings
from rules.batch import Batch
from rules.engine import Engine

T0 = 1_767_225_600_000
S = 1000
GAS_LADDER = [{"level": "yellow", "value": 20}, {"level": "orange", "value": 35}, {"level": "red", "value": 50}]


def gas(sid: str) -> dict[str, Any]:
    return {"id": sid, "quantity": "combustible_gas", "unit": "%LEL", "period_s": 10,
            "thresholds": [{"rule": "gas", "ladder": GAS_LADDER}]}


def make_config(site_rules: list[dict[str, Any]], sensors: list[dict[str, Any]] | None = None,
                **site: Any) -> Config:
    sensors = sensors if sensors is not None else [gas(f"G{i}") for i in range(1, 5)]
    s = Site.model_validate({"id": "X", "name": "x", "kind": "chemical", "enterprise": "e", "region": "320582",
                             "lat": 30, "lon": 120, "zone": "Z", "sensors": sensors,
                             "site_rules": site_rules} | site)
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), sites=[s], zones=[],
                  recipients=[])


VOTE = {"rule": "area_a", "kind": "vote", "k": 2, "name": "储罐区可燃气体(2取3)",
        "members": [{"sensor": f"G{i}", "rule": "gas"} for i in (1, 2, 3)]}
ITEM = {"rule": "item", "kind": "aggregate", "members": [{"sensor": f"G{i}", "rule": "gas"} for i in range(1, 5)]}
BLUE_GAS = [{"level": "blue", "value": 10}, *GAS_LADDER]


def run(config: Config, readings: list[tuple[float, str, float]], batch: int = 1000) -> list[tuple[float, str, str, str]]:
    """readings (seconds, sensor, value) at site X -> site-rule events (seconds, subject, kind, level)."""
    eng = Engine(config, started_ms=T0)
    out = []
    for i in range(0, len(readings), batch):
        part = readings[i:i + batch]
        b = Batch(["X"] * len(part), [r[1] for r in part],
                  np.array([T0 + round(r[0] * S) for r in part], dtype=np.int64),
                  np.array([r[2] for r in part], dtype=np.float64), np.zeros(len(part), dtype=np.int64))
        out += eng.process(b, T0).warnings
    return [((e.ts - T0) / S, e.subject, e.kind, e.level) for e in out if e.detail.get("site_rule")]


CASES = [
    ("vote 2 of 3: one detector alone raises nothing", [VOTE],
     [(0, "G1", 60), (10, "G2", 0), (20, "G3", 0)], []),
    ("vote 2 of 3: the second detector raises, at the lower of the two levels", [VOTE],
     [(0, "G1", 60), (10, "G2", 25), (20, "G2", 40), (30, "G1", 0)],
     [(10, "X/area_a", "raised", "yellow"), (20, "X/area_a", "escalated", "orange"),
      (30, "X/area_a", "cleared", "normal")]),
    ("vote: exactly at the threshold counts", [VOTE], [(0, "G1", 20), (0, "G3", 20)],
     [(0, "X/area_a", "raised", "yellow")]),
    ("vote: a member outside the group does not vote", [VOTE], [(0, "G1", 60), (0, "G4", 60)], []),
    ("GB 39496: one point is the item's level", [ITEM], [(0, "G1", 25)], [(0, "X/item", "raised", "yellow")]),
    ("GB 39496: 3 points at yellow make the item orange", [ITEM],
     [(0, "G1", 25), (10, "G2", 25), (20, "G3", 25), (30, "G3", 0)],
     [(0, "X/item", "raised", "yellow"), (20, "X/item", "escalated", "orange"),
      (30, "X/item", "deescalated", "yellow")]),
    ("GB 39496: 2 points at orange make the item red", [ITEM], [(0, "G1", 40), (10, "G2", 40)],
     [(0, "X/item", "raised", "orange"), (10, "X/item", "escalated", "red")]),
]


@pytest.mark.parametrize(("name", "rules", "readings", "expected"), CASES, ids=[c[0] for c in CASES])
def test_site_rule_cases(name: str, rules: list, readings: list, expected: list) -> None:
    assert run(make_config(rules), readings) == expected


def test_gb39496_four_points_at_blue_make_the_item_yellow() -> None:
    sensors = [gas(f"G{i}") | {"thresholds": [{"rule": "gas", "ladder": BLUE_GAS}]} for i in range(1, 5)]
    got = run(make_config([ITEM], sensors), [(0, "G1", 12), (10, "G2", 12), (20, "G3", 12), (30, "G4", 12)])
    assert got == [(0, "X/item", "raised", "blue"), (30, "X/item", "escalated", "yellow")]


def tailings_sensors() -> list[dict[str, Any]]:
    rain = {"id": "RG", "quantity": "rain_increment", "unit": "mm", "period_s": 300,
            "rain": {"rule": "rainfall", "windows": [{"hours": 1, "ladder": [
                {"level": "yellow", "value": 20}, {"level": "orange", "value": 30}, {"level": "red", "value": 50}]}]}}
    pz = {"id": "PZ", "quantity": "phreatic_depth", "unit": "m", "period_s": 600,
          "thresholds": [{"rule": "phreatic_depth", "direction": "low", "ladder": [
              {"level": "yellow", "value": 4.8}, {"level": "orange", "value": 4.4}, {"level": "red", "value": 4.0}]}],
          "rate": [{"rule": "phreatic_fall", "window_s": 600, "per_s": 3600, "direction": "low",
                    "ladder": [{"level": "yellow", "value": -0.3}]}]}
    return [rain, pz]


COMPOSITE = {"rule": "storm_seepage", "kind": "composite", "name": "暴雨叠加浸润线上升",
             "all_of": [{"rule": "rainfall", "min_level": "orange"},
                        {"sensor": "PZ", "rule": "phreatic_fall", "min_level": "yellow"}],
             "escalate": {"sensor": "PZ", "rule": "phreatic_depth"}}


def test_composite_rain_and_falling_phreatic_depth_escalate_the_item_by_one_level() -> None:
    config = make_config([COMPOSITE], tailings_sensors(), kind="tailings")
    readings = [(0, "PZ", 5.0), (0, "RG", 0.0),
                (600, "PZ", 4.7),          # yellow on depth, falling 1.8 m/h -> phreatic_fall yellow
                (900, "RG", 35.0),         # 1 h rain orange: all conditions hold -> yellow + 1 = orange
                (1200, "PZ", 4.3),         # depth orange -> composite red
                (1800, "PZ", 4.3),         # no longer falling -> composite cleared
                ]
    assert run(config, readings) == [(900, "X/storm_seepage", "raised", "orange"),
                                     (1200, "X/storm_seepage", "escalated", "red"),
                                     (1800, "X/storm_seepage", "cleared", "normal")]


def test_composite_any_of_with_a_fixed_level() -> None:
    rule = {"rule": "any_gas", "kind": "composite", "level": "red",
            "any_of": [{"sensor": "G1", "rule": "gas", "min_level": "orange"},
                       {"sensor": "G2", "rule": "gas", "min_level": "red"}]}
    assert run(make_config([rule]), [(0, "G2", 40), (10, "G1", 36), (20, "G1", 0)]) == [
        (10, "X/any_gas", "raised", "red"), (20, "X/any_gas", "cleared", "normal")]


def test_a_site_rule_may_use_an_earlier_site_rule() -> None:
    follow = {"rule": "area_red", "kind": "composite", "level": "red",
              "all_of": [{"rule": "area_a", "min_level": "orange"}]}
    got = run(make_config([VOTE, follow]), [(0, "G1", 40), (10, "G2", 40)])
    assert got == [(10, "X/area_a", "raised", "orange"), (10, "X/area_red", "raised", "red")]


def test_site_rule_events_name_the_rule_for_texts() -> None:
    eng = Engine(make_config([VOTE]), started_ms=T0)
    b = Batch(["X", "X"], ["G1", "G2"], np.array([T0, T0 + 10_000]), np.array([60.0, 60.0]), np.zeros(2, np.int64))
    ev = [e for e in eng.process(b, T0 + 20_000).warnings if e.rule == "area_a"][0]
    assert ev.detail["quantity"] == "储罐区可燃气体(2取3)"
    assert ev.detail["members"] == {"G1|gas": "red", "G2|gas": "red", "G3|gas": "normal"}
    assert (ev.value, ev.threshold, ev.detail["cause"]) == (2.0, 2.0, "X/G2|gas")


@pytest.mark.parametrize(("rule", "message"), [
    (VOTE | {"k": 4}, "k = 4 exceeds the 3 members"),
    (VOTE | {"members": [{"sensor": "G9", "rule": "gas"}, {"sensor": "G1", "rule": "gas"}]}, "unknown sensor 'G9'"),
    (VOTE | {"members": [{"sensor": "G1", "rule": "nope"}, {"sensor": "G2", "rule": "gas"}]}, "has no rule 'nope'"),
    (VOTE | {"rule": "G1"}, "already a sensor"),
    (VOTE | {"members": [{"sensor": "G1", "rule": "gas"}, {"sensor": "G1", "rule": "gas"}], "k": 2},
     "listed twice"),
    (VOTE | {"rule": "gas"}, "already a sensor"),
    ({"rule": "c", "kind": "composite", "level": "red", "all_of": [{"rule": "later"}]}, "no sensor rule"),
    ({"rule": "c", "kind": "composite", "all_of": [{"rule": "gas"}]}, "exactly one of level and escalate"),
    ({"rule": "c", "kind": "composite", "level": "red"}, "needs all_of or any_of"),
])
def test_bad_site_rules_are_explained(rule: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_config([rule])


readings_strategy = st.lists(st.tuples(st.sampled_from(["G1", "G2", "G3", "G4"]),
                                       st.sampled_from([0.0, 12.0, 20.0, 25.0, 35.0, 40.0, 55.0])),
                             min_size=1, max_size=80)


def _timed(raw: list[tuple[str, float]]) -> list[tuple[float, str, float]]:
    return [(i * 3.0, s, v) for i, (s, v) in enumerate(raw)]


@settings(max_examples=60, deadline=None)
@given(raw=readings_strategy)
def test_site_events_do_not_depend_on_the_batch_size(raw: list[tuple[str, float]]) -> None:
    sensors = [gas(f"G{i}") | {"thresholds": [{"rule": "gas", "ladder": BLUE_GAS}]} for i in range(1, 5)]
    config = make_config([VOTE, ITEM], sensors)
    readings = _timed(raw)
    whole = run(config, readings, 1000)
    assert run(config, readings, 1) == whole
    assert run(config, readings, 7) == whole


@settings(max_examples=40, deadline=None)
@given(raw=readings_strategy, cut=st.integers(min_value=0, max_value=80))
def test_site_state_survives_a_restart(raw: list[tuple[str, float]], cut: int) -> None:
    config = make_config([VOTE, ITEM])
    readings = _timed(raw)
    whole = run(config, readings)

    def events(eng: Engine, part: list[tuple[float, str, float]]) -> list[tuple[float, str, str, str]]:
        if not part:
            return []
        b = Batch(["X"] * len(part), [r[1] for r in part], np.array([T0 + round(r[0] * S) for r in part]),
                  np.array([r[2] for r in part]), np.zeros(len(part), np.int64))
        return [((e.ts - T0) / S, e.subject, e.kind, e.level) for e in eng.process(b, T0).warnings
                if e.detail.get("site_rule")]

    first = Engine(config, started_ms=T0)
    got = events(first, readings[:cut])
    saved = first.export_site("X")
    second = Engine(config, started_ms=T0)
    second.import_site("X", orjson.loads(orjson.dumps(saved)))  # as the faust table keeps it
    got += events(second, readings[cut:])
    assert got == whole
