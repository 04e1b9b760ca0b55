"""The enterprise safety index: its components as tables, and the ranking over store rows (both backends)."""

from __future__ import annotations

import datetime as dt

import pytest

from alerts.safety_index import FAULT_RULE, EpisodeFacts, day_scores, index_of, safety_index
from alerts.store import Action, LevelChange, Store
from config.indicators import SafetyIndexSettings
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)
from tests.alerts.indicator_rows import ENT_A, ENT_B, episode, small_config

# 2026-07-03 00:00 in Asia/Shanghai; the tests' days are local days
DAY = dt.timedelta(days=1)
START = dt.datetime(2026, 7, 2, 16, 0, tzinfo=dt.UTC)
END = START + DAY
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
SENSORS = {"CH-A/S1", "CH-A/S2", "CH-A2/S1", "CH-A2/S2"}
SETTINGS = SafetyIndexSettings()


def ep(peak: str, at: dt.datetime, **fields: object) -> EpisodeFacts:
    values: dict[str, object] = {"rule": "gas", "subject": "CH-A/S1", "peak": peak, "raised_at": at}
    values.update(fields)
    return EpisodeFacts(**values)  # type: ignore[arg-type]


def fault(subject: str, start: dt.datetime, end: dt.datetime | None) -> EpisodeFacts:
    return EpisodeFacts(rule=FAULT_RULE, subject=subject, peak="yellow", raised_at=start, fault_start=start,
                        fault_end=end)


def scores(episodes: list[EpisodeFacts], as_of: dt.datetime = END, **kw: object) -> dict[str, object]:
    comps = day_scores(START, END, as_of, episodes, SENSORS, SafetyIndexSettings.model_validate(kw),
                       ack_level="orange", ack_due_min=10)
    return {name: c["score"] for name, c in comps.items()}


@pytest.mark.parametrize(("episodes", "expected"), [
    # a quiet day: nothing to answer, dispose or call false; all sensors online
    ([], {"warnings": 1.0, "acknowledge": None, "disposal": None, "false_alarms": None, "online": 1.0,
          "overdue_repairs": 1.0}),
    # red (8) + orange (4) + yellow (2) = 14 of 20 points; red answered in 5 min, orange in 30 (late)
    ([ep("red", START + H, escalation_since=START + H, acknowledged_at=START + H + 5 * M, state="cleared",
         disposed=True),
      ep("orange", START + 2 * H, acknowledged_at=START + 2 * H + 30 * M, state="cleared"),
      ep("yellow", START + 3 * H)],
     {"warnings": 0.3, "acknowledge": 0.5, "disposal": 0.5, "false_alarms": 1.0, "online": 1.0,
      "overdue_repairs": 1.0}),
    # a false alarm costs no warning points, counts as a false alarm, and is not due a disposal
    ([ep("red", START + H, false_alarm=True, state="closed"), ep("blue", START + 2 * H, state="cleared")],
     {"warnings": 0.95, "acknowledge": 0.0, "disposal": 0.0, "false_alarms": 0.5, "online": 1.0,
      "overdue_repairs": 1.0}),
    # episodes of another day do not count
    ([ep("red", START - M), ep("red", END)],
     {"warnings": 1.0, "acknowledge": None, "disposal": None, "false_alarms": None, "online": 1.0,
      "overdue_repairs": 1.0}),
    # one sensor of four faulty for 6 h of 24; overlapping faults count once; not past 24 h
    ([fault("CH-A/S1", START + H, START + 5 * H), fault("CH-A/S1", START + 3 * H, START + 7 * H)],
     {"warnings": 1.0, "acknowledge": None, "disposal": None, "false_alarms": None, "online": 0.9375,
      "overdue_repairs": 1.0}),
    # a fault open since two days: offline the whole day, and overdue; another enterprise's sensor ignored
    ([fault("CH-A2/S2", START - 2 * DAY, None), fault("TD-B/S1", START, None)],
     {"warnings": 1.0, "acknowledge": None, "disposal": None, "false_alarms": None, "online": 0.75,
      "overdue_repairs": 0.75}),
])
def test_components_table(episodes: list[EpisodeFacts], expected: dict[str, object]) -> None:
    assert scores(episodes) == expected


def test_an_unanswered_warning_is_late_only_once_due() -> None:
    red = ep("red", START + H, escalation_since=START + H + 2 * M)
    assert scores([red], as_of=START + H + 11 * M)["acknowledge"] is None  # due at +12 min
    assert scores([red], as_of=START + H + 12 * M)["acknowledge"] == 0.0
    answered_later = ep("red", START + H, acknowledged_at=START + 2 * H)
    assert scores([answered_later], as_of=START + H + 30 * M)["acknowledge"] == 0.0  # not seen yet: late


def test_today_counts_up_to_as_of() -> None:
    # 2 h into the day, one sensor of four down for the last hour
    got = scores([fault("CH-A/S1", START + H, None)], as_of=START + 2 * H)
    assert got["online"] == 0.875 and got["overdue_repairs"] == 1.0


def test_settings_change_the_components() -> None:
    got = scores([ep("red", START + H), ep("red", START + 2 * H)], warning_points_zero=32, level_points={"red": 4})
    assert got["warnings"] == 0.75
    assert scores([fault("CH-A/S1", START, None)], repair_due_h=12)["overdue_repairs"] == 0.75


@pytest.mark.parametrize(("components", "weights", "index"), [
    ({"warnings": 1.0, "acknowledge": 0.5}, {"warnings": 1, "acknowledge": 1}, 75.0),
    ({"warnings": 1.0, "acknowledge": None}, {"warnings": 1, "acknowledge": 1}, 100.0),  # does not apply
    ({"warnings": 0.3, "acknowledge": 0.5}, {"warnings": 3, "acknowledge": 1}, 35.0),
    ({"warnings": 0.0, "acknowledge": 1.0}, {"warnings": 0, "acknowledge": 1}, 100.0),  # weight 0: left out
    ({"warnings": None}, {"warnings": 1}, None),
])
def test_index_table(components: dict[str, float | None], weights: dict[str, float], index: float | None) -> None:
    assert index_of({c: {"score": s} for c, s in components.items()}, weights) == index


@pytest.fixture
def dataset(store: Store) -> Store:
    d1, d3 = START - 2 * DAY, START  # local 2026-07-01 and 2026-07-03
    rows = [
        # 甲化工, day 1: an orange answered in 5 min and disposed; day 3: a red never answered
        episode("a1", "CH-A", "orange", d1 + H, escalation_since=d1 + H, acknowledged_at=d1 + H + 5 * M,
                acknowledged_by="x", state="cleared", cleared_at=d1 + 2 * H),
        episode("a2", "CH-A", "red", d3 + H, escalation_since=d3 + H, red_since=d3 + H),
        # 甲化工: a sensor fault from day 2 00:00 local, cleared (event time) at day 2 12:00
        episode("f1", "CH-A2", "yellow", d1 + DAY, rule=FAULT_RULE, subject="CH-A2/S1", state="cleared",
                cleared_at=d1 + DAY + 13 * H),
        # 乙矿业: a false alarm on day 3, and a fault open since before the window
        episode("b1", "TD-B", "yellow", d3 + 2 * H, enterprise=ENT_B, false_alarm=True, state="closed"),
        episode("f2", "TD-B", "yellow", d1 - 3 * DAY, enterprise=ENT_B, rule=FAULT_RULE, subject="TD-B/S2"),
    ]
    with store.session.begin() as s:
        s.add_all(rows)
        s.flush()
        s.add_all([Action(episode_id="a1", action="dispose", actor="x", at=d1 + 3 * H, category="repair"),
                   LevelChange(episode_id="f1", kind="cleared", level="normal", previous="yellow", value=0,
                               ts=int((d1 + DAY + 12 * H).timestamp() * 1000))])
    return store


def test_ranking_and_trend(dataset: Store) -> None:
    as_of = END - M  # 23:59 local on day 3
    data = safety_index(dataset, small_config(), as_of, days=3)
    assert data["dates"] == ["2026-07-01", "2026-07-02", "2026-07-03"]
    assert (data["ack_level"], data["ack_due_min"], data["repair_due_h"]) == ("orange", 10, 24)
    a, b = (next(r for r in data["enterprises"] if r["enterprise"] == e) for e in (ENT_A, ENT_B))
    assert (a["sites"], a["sensors"], b["sensors"]) == (["CH-A", "CH-A2"], 4, 2)
    # day 1: warnings 0.8 (orange 4 points), acknowledged in time, disposed; 4 sensors online
    assert {c: v["score"] for c, v in a["days"][0]["components"].items()} == {
        "warnings": 0.8, "acknowledge": 1.0, "disposal": 1.0, "false_alarms": 1.0, "online": 1.0,
        "overdue_repairs": 1.0}
    # day 2: one of four sensors faulty for 12 h of 24
    assert a["days"][1]["components"]["online"]["score"] == 0.875
    assert a["days"][2]["components"]["acknowledge"] == {"score": 0.0, "on_time": 0, "late": 1}
    assert a["trend"] == [95.0, 75.9, 64.7]  # day 2: the fault, ended, had no disposal feedback
    assert a["index"] == 64.7 and a["change"] == -11.2
    # 乙矿业: one of two sensors down all along, overdue every day; day 3 a false alarm
    assert b["today"]["online"]["score"] == 0.5 and b["today"]["overdue_repairs"]["overdue"] == ["TD-B/S2"]
    assert b["today"]["false_alarms"]["score"] == 0.0
    assert b["trend"] == [72.7, 72.7, 61.5]
    assert (a["mean"], b["mean"]) == (78.5, 69.0)
    # lowest mean first: whom to inspect
    assert [(r["rank"], r["enterprise"]) for r in data["enterprises"]] == [(1, ENT_B), (2, ENT_A)]


def test_scoped_to_enterprises_and_configured_weights(dataset: Store) -> None:
    config = small_config(safety_index={"weights": {"warnings": 1, "acknowledge": 0, "disposal": 0, "online": 0,
                                                    "false_alarms": 0, "overdue_repairs": 0}, "trend_days": 2})
    data = safety_index(dataset, config, END - M, enterprises={ENT_A})
    (a,) = data["enterprises"]
    assert a["enterprise"] == ENT_A and len(a["trend"]) == 2
    assert a["trend"] == [100.0, 60.0]  # warnings alone: no warning on day 2, a red (8 of 20) on day 3


def test_needs_an_aware_time(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone"):
        safety_index(store, small_config(), dt.datetime(2026, 7, 3))
