"""Grouped SMS (alerts/grouping.py): several changes of one site in one text per recipient.

Issue 3 "Noise control" / "Channels": one message per recipient for the changes of one site within
group_wait; every rendered SMS has its segment count asserted; a text stays within two UCS-2
segments (134 UTF-16 units) whatever the group holds. A rain rule's item names the window that
decided it (1小时雨量 ... 24小时雨量), not the gauge's 5-minute increments.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.grouping import latest_per_episode, order_by_severity, render_group
from alerts.render import COLOUR_WORDS, MAX_UNITS, QUANTITY_NAMES, SENDER_TAGS, action, render_sms
from alerts.segments import segments
from config import example_dir, load_config
from config.models import Config, Sensor, Site
from config.models_base import LadderStep
from config.rules import RAIN_WINDOWS_H
from formats.warning import WarningEvent

#: 2025-11-23 14:05 Beijing time, in epoch ms.
TS = int(datetime(2025, 11, 23, 14, 5, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
MIN = 60_000


@cache
def _config() -> Config:
    return load_config(example_dir(), env={})


def _site(site_id: str) -> Site:
    return _config().site(site_id)


@cache
def _big_dam() -> Site:
    """TD-001 with 12 monitored points: more piezometers and GNSS points, and a rain gauge (RG-001's
    RAIN-5M with its rain rule)."""
    td = _site("TD-001")

    def copy(site: str, sensor: str, new_id: str) -> Sensor:
        original = next(s for s in _site(site).sensors if s.id == sensor)
        return original.model_copy(update={"id": new_id})

    extra = [copy("TD-001", "PZ-01", f"PZ-0{i}") for i in (2, 3, 4)]
    extra += [copy("TD-001", "GNSS-01", f"GNSS-0{i}") for i in (2, 3, 4)]
    extra.append(copy("RG-001", "RAIN-5M", "RG-01"))
    return td.model_copy(update={"sensors": [*td.sensors, *extra]})


def _sensors(site: Site) -> dict[str, Sensor | None]:
    return {s.id: s for s in site.sensors}


def _ladder(sensor: Sensor, window_h: int = 1) -> list[LadderStep]:
    """The sensor's first threshold ladder, or for a rain gauge its rain rule's ``window_h``."""
    if sensor.thresholds:
        return list(sensor.thresholds[0].ladder)
    assert sensor.rain is not None, sensor.id
    return next(w.ladder for w in sensor.rain.windows if w.hours == window_h)


def _ev(
    site: Site,
    sensor_id: str,
    level: str,
    value: float,
    kind: str = "raised",
    previous: str = "normal",
    *,
    ts: int = TS,
    episode: str | None = None,
    window_h: int = 1,
) -> WarningEvent:
    """For ``cleared``: ``level`` is "normal" and ``previous`` the level left (the peak).

    A sensor without threshold rules is a rain gauge: its event comes from the rain rule, shaped
    as ``rules/rain.py`` makes it, decided by the ``window_h`` window (``detail["window_h"]``).
    """
    sensor = next(s for s in site.sensors if s.id == sensor_id)
    peak = previous if kind == "cleared" else level
    detail: dict[str, object] = {"peak": peak, "quantity": sensor.quantity}
    if sensor.thresholds:
        rule = sensor.thresholds[0].rule
        detail["direction"] = sensor.thresholds[0].direction
    else:
        assert sensor.rain is not None, sensor_id
        rule = sensor.rain.rule
        sums = {f"{h}h": value if h >= window_h else 0.0 for h in RAIN_WINDOWS_H}
        detail.update(window_h=window_h, sums=sums, raised_ts=ts)
    return WarningEvent(
        episode=episode or f"ep-{site.id}-{sensor_id}",
        site=site.id,
        subject=f"{site.id}/{sensor_id}",
        rule=rule,
        kind=kind,  # type: ignore[arg-type]
        level=level,
        previous=previous,
        ts=ts,
        emitted_at=ts + 500,
        value=value,
        threshold=None,
        unit=sensor.unit,
        detail=detail,
    )


def _render(events: list[WarningEvent], site: Site, role: str, language: str) -> str:
    return render_group(events, site, _sensors(site), role=role, language=language)


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# ----------------------------------------------------------------------------- one event


@pytest.mark.parametrize(
    ("sensor", "level", "kind", "previous"),
    [
        ("PZ-01", "red", "raised", "normal"),
        ("FB-01", "orange", "escalated", "yellow"),
        ("DB-01", "yellow", "deescalated", "orange"),
        ("WL-01", "normal", "cleared", "red"),
    ],
)
@pytest.mark.parametrize("role", ["operator", "officer", "resident"])
@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_one_event_is_exactly_render_sms(
    sensor: str, level: str, kind: str, previous: str, role: str, language: str
) -> None:
    td = _site("TD-001")
    event = _ev(td, sensor, level, 3.9, kind, previous)
    text = _render([event], td, role, language)
    assert text == render_sms(event, td, _sensors(td)[sensor], role=role, language=language)
    assert segments(text) <= 2


def test_one_event_exact_text_and_segments() -> None:
    td = _site("TD-001")
    text = _render([_ev(td, "PZ-01", "red", 3.9)], td, "resident", "zh-CN")
    assert text == (
        "【hazwatch】夏河尾矿库浸润线埋深红色预警：11月23日14:05降至3.9m。"
        "立即转移！向两侧高处撤离，远离下游！"
    )
    assert _utf16(text) == 61 and segments(text) == 1


def test_changes_of_one_episode_count_once() -> None:
    td = _site("TD-001")
    raised = _ev(td, "PZ-01", "yellow", 4.7, ts=TS - MIN, episode="ep-1")
    escalated = _ev(td, "PZ-01", "orange", 4.3, "escalated", "yellow", episode="ep-1")
    assert latest_per_episode([escalated, raised]) == [escalated]
    text = _render([raised, escalated], td, "officer", "zh-CN")
    assert text == render_sms(escalated, td, _sensors(td)["PZ-01"], role="officer")
    assert text == (
        "【hazwatch】夏河尾矿库PZ-01测点浸润线埋深预警由黄色升级为橙色预警："
        "11月23日14:05降至4.3m。请立即现场核实并反馈处置情况。"
    )
    assert segments(text) == 2


# ----------------------------------------------------------------------------- 2, 5, 12 events


R, E, D, C = "raised", "escalated", "deescalated", "cleared"

# name: (site, [(sensor, level, value, kind, previous, minutes before 14:05)]); "TD-001+" is the
# 12-point dam of _big_dam().
# fmt: off
GROUPS: dict[str, tuple[str, list[tuple[str, str, float, str, str, int]]]] = {
    "two": ("TD-001", [
        ("PZ-01", "yellow", 4.6, R, "normal", 0),
        ("FB-01", "orange", 0.75, E, "yellow", 2)]),
    "five": ("TD-001", [
        ("DB-01", "orange", 73.5, R, "normal", 1),
        ("PZ-01", "yellow", 4.6, R, "normal", 1),
        ("FB-01", "yellow", 0.84, R, "normal", 0),
        ("GNSS-01", "red", 52, E, "orange", 3),
        ("WL-01", "normal", 349.9, C, "yellow", 0)]),
    "twelve": ("TD-001+", [
        ("PZ-01", "red", 3.9, E, "orange", 0),
        ("PZ-02", "orange", 4.3, R, "normal", 0),
        ("PZ-03", "yellow", 4.7, R, "normal", 0),
        ("PZ-04", "normal", 5.1, C, "yellow", 0),
        ("FB-01", "red", 0.68, E, "orange", 1),
        ("DB-01", "orange", 76, R, "normal", 0),
        ("WL-01", "yellow", 350.2, D, "orange", 0),
        ("GNSS-01", "orange", 41.5, R, "normal", 0),
        ("GNSS-02", "yellow", 31, R, "normal", 0),
        ("GNSS-03", "yellow", 30.4, D, "orange", 0),
        ("GNSS-04", "normal", 12, C, "orange", 0),
        ("RG-01", "orange", 62.5, E, "yellow", 0)]),
    "mixed": ("TD-001", [
        ("PZ-01", "yellow", 4.6, R, "normal", 0),
        ("FB-01", "yellow", 0.84, R, "normal", 0),
        ("DB-01", "orange", 73.5, R, "normal", 0),
        ("WL-01", "normal", 349.9, C, "yellow", 0)]),
    "clears": ("TD-001", [
        ("PZ-01", "normal", 5.2, C, "yellow", 0),
        ("FB-01", "normal", 1.0, C, "orange", 1)]),
    "chemical": ("CH-001", [
        ("GT-101", "red", 55.5, R, "normal", 0),
        ("GT-102", "orange", 120, D, "red", 2),
        ("LT-201", "yellow", 8.7, R, "normal", 0)]),
}
# fmt: on


def _group(name: str) -> tuple[list[WarningEvent], Site]:
    site_id, rows = GROUPS[name]
    site = _big_dam() if site_id == "TD-001+" else _site(site_id)
    events = [
        _ev(site, sensor, level, value, kind, previous, ts=TS - minutes * MIN)
        for sensor, level, value, kind, previous, minutes in rows
    ]
    return events, site


# (group, role, language, UTF-16 units, segments, text)
# fmt: off
EXPECTED = [
    # 2 events: everything fits in Chinese; English gives up the date, points, verbs and the
    # colour already named in front.
    ("two", "operator", "zh-CN", 91, 2,
     "【hazwatch】夏河尾矿库橙色预警（共2项）：FB-01测点安全超高升为橙色0.75m，"
     "PZ-01测点浸润线埋深黄色4.6m（11月23日14:05）。请立即核实并反馈处置情况。"),
    ("two", "operator", "en", 133, 1,
     "[hazwatch] Orange warning, Xiahe tailings dam: freeboard 0.75 m, phreatic depth yellow 4.6 "
     "m at 14:05. Verify now and report actions."),
    ("two", "resident", "zh-CN", 85, 2,
     "【hazwatch】夏河尾矿库橙色预警（共2项）：安全超高升为橙色0.75m，"
     "浸润线埋深黄色4.6m（11月23日14:05）。做好转移准备，远离下游沟谷，听从村组通知。"),
    ("two", "resident", "en", 129, 1,
     "[hazwatch] Orange warning, Xiahe tailings dam: freeboard 0.75 m and 1 more at 14:05. "
     "Prepare to evacuate, keep out of the valley."),
    # 5 events, red first, an all-clear as its own clause.
    ("five", "officer", "zh-CN", 111, 2,
     "【hazwatch】夏河尾矿库红色预警（共4项）：表面位移升为红色52mm，干滩长度橙色73.5m，"
     "安全超高黄色0.84m，浸润线埋深黄色4.6m；库水位黄色预警解除（14:05）。请立即启动应急响应，"
     "组织人员撤离并反馈！"),
    ("five", "officer", "en", 130, 1,
     "[hazwatch] Red warning, Xiahe tailings dam: surface displacement 52 mm and 4 more. Start "
     "emergency response now, evacuate, report!"),
    ("five", "resident", "zh-CN", 115, 2,
     "【hazwatch】夏河尾矿库红色预警（共4项）：表面位移升为红色52mm，干滩长度橙色73.5m，"
     "安全超高黄色0.84m，浸润线埋深黄色4.6m；库水位黄色预警解除（11月23日14:05）。立即转移！"
     "向两侧高处撤离，远离下游！"),
    ("five", "resident", "en", 133, 1,
     "[hazwatch] Red warning, Xiahe tailings dam: surface displacement 52 mm and 4 more. "
     "EVACUATE NOW to high ground, away from the valley!"),
    # 12 events: the most severe are kept, "等10项" counts all ten warnings.
    ("twelve", "operator", "zh-CN", 127, 2,
     "【hazwatch】夏河尾矿库红色预警：浸润线埋深3.9m，安全超高0.68m，干滩长度橙色76m，"
     "表面位移橙色41.5mm，浸润线埋深橙色4.3m，1小时雨量橙色62.5mm等10项；2项预警解除（14:05）。"
     "请立即核实，启动应急响应并反馈处置情况。"),
    ("twelve", "operator", "en", 132, 1,
     "[hazwatch] Red warning, Xiahe tailings dam: phreatic depth 3.9 m and 11 more at 14:05. "
     "Verify now, start emergency response, report."),
    ("twelve", "resident", "zh-CN", 125, 2,
     "【hazwatch】夏河尾矿库红色预警：浸润线埋深3.9m，安全超高0.68m，干滩长度橙色76m，"
     "表面位移橙色41.5mm，浸润线埋深橙色4.3m，1小时雨量橙色62.5mm等10项；2项预警解除（14:05）。"
     "立即转移！向两侧高处撤离，远离下游！"),
    ("twelve", "resident", "en", 128, 1,
     "[hazwatch] Red warning, Xiahe tailings dam: phreatic depth 3.9 m and 11 more. EVACUATE NOW "
     "to high ground, away from the valley!"),
    # Warnings and an all-clear, everything shown (the example, with measuring points).
    ("mixed", "operator", "zh-CN", 125, 2,
     "【hazwatch】夏河尾矿库橙色预警（共3项）：DB-01测点干滩长度橙色73.5m，"
     "FB-01测点安全超高黄色0.84m，PZ-01测点浸润线埋深黄色4.6m；"
     "WL-01测点库水位黄色预警解除（11月23日14:05）。请立即核实并反馈处置情况。"),
    ("mixed", "resident", "zh-CN", 105, 2,
     "【hazwatch】夏河尾矿库橙色预警（共3项）：干滩长度橙色73.5m，安全超高黄色0.84m，"
     "浸润线埋深黄色4.6m；库水位黄色预警解除（11月23日14:05）。做好转移准备，远离下游沟谷，"
     "听从村组通知。"),
    ("mixed", "operator", "en", 132, 1,
     "[hazwatch] Orange warning, Xiahe tailings dam: dry beach length 73.5 m and 2 more; 1 "
     "lifted at 14:05. Verify now and report actions."),
    # Only all-clears: the colour of each warning that ended, the all-clear action.
    ("clears", "operator", "zh-CN", 80, 2,
     "【hazwatch】夏河尾矿库预警解除（共2项）：FB-01测点安全超高橙色、"
     "PZ-01测点浸润线埋深黄色（11月23日14:05）。请核实现场并完成处置反馈。"),
    ("clears", "resident", "zh-CN", 67, 1,
     "【hazwatch】夏河尾矿库预警解除（共2项）：安全超高橙色、浸润线埋深黄色（11月23日14:05）。"
     "已转移人员请听从通知后返回。"),
    ("clears", "resident", "en", 132, 1,
     "[hazwatch] Warnings lifted, Xiahe tailings dam: freeboard orange, phreatic depth yellow at "
     "14:05. Evacuees return only when told to."),
    # A long English site name is cut last.
    ("chemical", "resident", "zh-CN", 104, 2,
     "【hazwatch】临港石化储罐区红色预警（共3项）：可燃气体浓度红色55.5%LEL，"
     "有毒气体浓度降为橙色120%OEL，储罐液位黄色8.7m（11月23日14:05）。立即关闭门窗，"
     "听从指挥向上风向撤离！"),
    ("chemical", "resident", "en", 134, 2,
     "[hazwatch] Red warning, Lingang Petrochemical ta…: combustible gas 55.5 %LEL and 2 more. "
     "Close windows NOW, evacuate upwind when told!"),
]
# fmt: on


@pytest.mark.parametrize(
    ("group", "role", "language", "n_units", "n_segments", "expected"),
    EXPECTED,
    ids=[f"{g}-{r}-{lang}" for g, r, lang, *_ in EXPECTED],
)
def test_grouped_text(
    group: str, role: str, language: str, n_units: int, n_segments: int, expected: str
) -> None:
    events, site = _group(group)
    text = _render(events, site, role, language)
    assert text == expected
    assert _utf16(text) == n_units <= MAX_UNITS
    assert segments(text) == n_segments


def test_sensors_keyed_by_subject_or_missing() -> None:
    events, site = _group("two")
    by_id = _render(events, site, "operator", "zh-CN")
    by_subject = {f"{site.id}/{s.id}": s for s in site.sensors}
    assert render_group(events, site, by_subject, role="operator") == by_id
    # Without configuration the quantity comes from detail["quantity"].
    assert render_group(events, site, {}, role="operator") == by_id
    single = events[:1]
    assert render_group(single, site, by_subject, role="operator") == _render(
        single, site, "operator", "zh-CN"
    )


def test_rain_item_names_its_window() -> None:
    """A rain rule's item is named by the window that decided it, never by the 5-minute gauge."""
    dam = _big_dam()
    events = [_ev(dam, "PZ-01", "yellow", 4.6), _ev(dam, "RG-01", "orange", 52.4, window_h=3)]
    text = _render(events, dam, "operator", "zh-CN")
    assert text == (
        "【hazwatch】夏河尾矿库橙色预警（共2项）：RG-01测点3小时雨量橙色52.4mm，"
        "PZ-01测点浸润线埋深黄色4.6m（11月23日14:05）。请立即核实并反馈处置情况。"
    )
    assert _utf16(text) == 91 and segments(text) == 2
    text = _render(events, dam, "resident", "en")
    assert text == (
        "[hazwatch] Orange warning, Xiahe tailings dam: 3 h rainfall 52.4 mm and 1 more at 14:05. "
        "Prepare to evacuate, keep out of the valley."
    )
    assert _utf16(text) == 133 and segments(text) == 1


def test_order_does_not_depend_on_arrival() -> None:
    events, site = _group("twelve")
    text = _render(events, site, "operator", "zh-CN")
    assert _render(list(reversed(events)), site, "operator", "zh-CN") == text
    assert _render(events[5:] + events[:5], site, "operator", "zh-CN") == text


def test_order_by_severity() -> None:
    events, _ = _group("five")
    expected = ["GNSS-01", "DB-01", "FB-01", "PZ-01", "WL-01"]  # red, orange, yellow x2, cleared
    assert [e.sensor for e in order_by_severity(events)] == expected


def test_no_urls() -> None:
    for group, role, language, *_ in EXPECTED:
        events, site = _group(group)
        text = _render(events, site, role, language)
        assert "http" not in text.lower() and "www" not in text.lower()


TD_YELLOW = _ev(_site("TD-001"), "PZ-01", "yellow", 4.6)
CH_RED = _ev(_site("CH-001"), "GT-101", "red", 55)
TD_AMBER = _ev(_site("TD-001"), "PZ-01", "amber", 4.6)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "at least one event"),
        ([TD_YELLOW, CH_RED], r"must be of site 'TD-001', got events of \['CH-001'\]"),
        ([TD_AMBER], "needs a warning level, got 'amber'"),
    ],
)
def test_bad_groups_are_rejected(events: list[WarningEvent], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _render(events, _site("TD-001"), "operator", "zh-CN")


# ----------------------------------------------------------------------------- the bound

KINDS = ("raised", "escalated", "deescalated", "cleared")


@st.composite
def _groups(draw: st.DrawFn) -> tuple[list[WarningEvent], Site, str, str]:
    """A random subset of one example site's sensors, each with a random change."""
    site = draw(st.sampled_from([*_config().sites, _big_dam()]))
    candidates = [s for s in site.sensors if s.thresholds or s.rain]
    chosen = draw(st.lists(st.sampled_from(candidates), min_size=1, unique_by=lambda s: s.id))
    events = []
    for sensor in chosen:
        window_h = 1
        if not sensor.thresholds and sensor.rain is not None:
            window_h = draw(st.sampled_from([w.hours for w in sensor.rain.windows]))
        rungs = [r.level for r in _ladder(sensor, window_h)]
        kind = draw(st.sampled_from(KINDS))
        level = draw(st.sampled_from(rungs))
        moved = draw(st.sampled_from(rungs))  # the level left by an escalation or de-escalation
        previous = {"raised": "normal", "cleared": level}.get(kind, moved)
        new = "normal" if kind == "cleared" else level
        lo, hi = sensor.range or (0.0, 1000.0)
        value = round(draw(st.floats(min_value=lo, max_value=hi)), 2)
        ts = TS - draw(st.integers(min_value=0, max_value=24 * 60)) * MIN
        events.append(
            _ev(site, sensor.id, new, value, kind, previous, ts=ts, window_h=window_h)
        )
    role = draw(st.sampled_from(["operator", "officer", "resident"]))
    language = draw(st.sampled_from(["zh-CN", "en"]))
    return events, site, role, language


@settings(max_examples=400, deadline=None)
@given(_groups())
def test_every_group_fits_two_segments(group: tuple[list[WarningEvent], Site, str, str]) -> None:
    events, site, role, language = group
    text = _render(events, site, role, language)
    assert _utf16(text) <= MAX_UNITS
    assert segments(text) <= 2
    assert text.startswith(SENDER_TAGS[language])
    top = order_by_severity(events)[0]
    assert text.endswith(action(top, site, role=role, language=language))
    if top.kind != "cleared":
        assert COLOUR_WORDS[language][top.level] in text
    if any("window_h" in e.detail for e in events):  # windows, never the 5-minute increment
        assert QUANTITY_NAMES[language]["rain_increment"] not in text
    if len(events) == 1:
        sensor = _sensors(site)[top.sensor]
        assert text == render_sms(top, site, sensor, role=role, language=language)
