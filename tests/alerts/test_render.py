"""SMS rendering (alerts/render.py): every example site x sensor x level x kind x role x language.

STANDARDS.md "Warning dissemination": no URLs; red within two UCS-2 segments (134 units);
mountain-torrent residents read 准备转移 at orange and 立即转移 at red. A rain rule's event names
the window that decided it (1小时雨量 ... 24小时雨量), not the gauge's 5-minute increments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from alerts.render import (
    COLOUR_WORDS,
    MAX_UNITS,
    QUANTITY_NAMES,
    ROLES,
    action,
    format_time,
    format_value,
    render_sms,
)
from alerts.segments import encoding, segments, units
from config import example_dir, load_config
from config.models import LEVELS, QUANTITY_UNITS, Config, Sensor, Site
from config.models_base import LadderStep
from config.rules import RAIN_WINDOWS_H
from formats.warning import WarningEvent

#: 2025-11-23 14:05 Beijing time (06:05 UTC), in epoch ms.
TS = int(datetime(2025, 11, 23, 14, 5, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)
RAISED_TS = TS - 3_600_000
LANGUAGES = ("zh-CN", "en")
KINDS = ("raised", "escalated", "deescalated", "cleared")


@cache
def _config() -> Config:
    return load_config(example_dir(), env={})


@dataclass(frozen=True)
class Rule:
    """A ladder that raises warnings: a sensor's threshold rule, or one window of its rain rule
    (``window_h``: the rain engine's events carry the deciding window in ``detail``)."""

    rule: str
    direction: str
    ladder: tuple[LadderStep, ...]
    window_h: int | None = None


def _rules_of(sensor: Sensor) -> list[Rule]:
    out = [Rule(r.rule, r.direction, tuple(r.ladder)) for r in sensor.thresholds]
    if sensor.rain is not None:
        rain = sensor.rain
        out += [Rule(rain.rule, "high", tuple(w.ladder), w.hours) for w in rain.windows]
    return out


def _quantity(sensor: Sensor, rule: Rule, lang: str) -> str:
    """The quantity a text names: a rain rule's deciding window, else the sensor's quantity."""
    if rule.window_h is not None:
        return f"{rule.window_h}小时雨量" if lang == "zh-CN" else f"{rule.window_h} h rainfall"
    return QUANTITY_NAMES[lang][sensor.quantity]


def _value(rule: Rule, threshold: float) -> float:
    """A reading just beyond ``threshold`` on the danger side."""
    step = 0.1 if abs(threshold) < 10 else 1.0
    return round(threshold - step if rule.direction == "low" else threshold + step, 2)


def _event(site: Site, sensor: Sensor, rule: Rule, level: str, kind: str) -> WarningEvent:
    """``level`` is the new level, or for ``cleared`` the level that was left (and the peak).

    A rain window's event is shaped as ``rules/rain.py`` ``RainEngine.to_event`` makes it: value
    and threshold of the deciding window, whose hours are ``detail["window_h"]``, and the
    episode's start in ``detail["raised_ts"]``."""
    rungs = [s.level for s in rule.ladder]
    values = {s.level: s.value for s in rule.ladder}
    i = rungs.index(level)
    previous = {
        "raised": "normal",
        "escalated": rungs[i - 1] if i > 0 else None,
        "deescalated": rungs[i + 1] if i + 1 < len(rungs) else None,
        "cleared": level,
    }[kind]
    assert previous is not None
    peak = rungs[-1] if kind == "deescalated" else level
    value = _value(rule, values[level])
    detail: dict[str, object] = {"peak": peak, "quantity": sensor.quantity}
    if rule.window_h is None:
        detail["direction"] = rule.direction
    else:
        # all the rain fell within the deciding window: longer windows hold the same sum
        sums = {f"{h}h": value if h >= rule.window_h else 0.0 for h in RAIN_WINDOWS_H}
        detail.update(window_h=rule.window_h, sums=sums, raised_ts=RAISED_TS)
    return WarningEvent(
        episode="0b7f6c1e-0000-5000-8000-000000000001",
        site=site.id,
        subject=f"{site.id}/{sensor.id}",
        rule=rule.rule,
        kind=kind,  # type: ignore[arg-type]
        level="normal" if kind == "cleared" else level,
        previous=previous,
        ts=TS,
        emitted_at=TS + 500,
        value=value,
        threshold=values[level],
        unit=sensor.unit,
        detail=detail,
    )


@dataclass(frozen=True)
class Case:
    site: Site
    sensor: Sensor
    rule: Rule
    level: str
    kind: str
    role: str
    language: str

    @property
    def id(self) -> str:
        window = f"/{self.rule.window_h}h" if self.rule.window_h is not None else ""
        return (
            f"{self.site.id}/{self.sensor.id}{window}-{self.level}-{self.kind}-{self.role}-"
            f"{self.language}"
        )

    def event(self) -> WarningEvent:
        return _event(self.site, self.sensor, self.rule, self.level, self.kind)

    def text(self) -> str:
        return render_sms(
            self.event(), self.site, self.sensor, role=self.role, language=self.language
        )


def _rendered_sites() -> list[Site]:
    """The example's sites whose texts are rendered here: the first three (one of each kind), then
    each other site with a quantity none of the earlier ones has. A text depends on the site's
    kind, the quantity and the rule, not on which of several alike sites it is: the whole city
    would be 5,000 cases of the same texts."""
    seen: set[str] = set()
    out: list[Site] = []
    for site in _config().sites:
        quantities = {x.quantity for x in site.sensors}
        if len(out) < 3 or quantities - seen:
            out.append(site)
            seen |= quantities
    return out


def _cases() -> list[Case]:
    out = []
    for site in _rendered_sites():
        for sensor in site.sensors:
            for rule in _rules_of(sensor):
                rungs = [s.level for s in rule.ladder]
                for i, level in enumerate(rungs):
                    for kind in KINDS:
                        if (kind == "escalated" and i == 0) or (
                            kind == "deescalated" and i == len(rungs) - 1
                        ):
                            continue
                        for role in ROLES:
                            for language in LANGUAGES:
                                out.append(Case(site, sensor, rule, level, kind, role, language))
    return out


CASES = _cases()


def _case(
    site: str,
    sensor: str,
    level: str,
    kind: str,
    role: str,
    language: str,
    window_h: int | None = None,
) -> Case:
    """The case of a threshold rule, or of a rain rule's ``window_h`` window (default 1 h)."""
    found = [
        c
        for c in CASES
        if (c.site.id, c.sensor.id, c.level, c.kind, c.role, c.language)
        == (site, sensor, level, kind, role, language)
    ]
    if any(c.rule.window_h is not None for c in found):
        found = [c for c in found if c.rule.window_h == (window_h or 1)]
    (case,) = found
    return case


def test_cases_cover_every_example_site_and_rule() -> None:
    assert {c.site.id for c in CASES} == {"CH-001", "TD-001", "RG-001", "CH-002", "CH-004"}
    assert {c.sensor.quantity for c in CASES} == {  # every quantity of the example city with a rule
        x.quantity for s in _config().sites for x in s.sensors if x.thresholds or x.rain}
    rules = {(c.site.id, c.sensor.id) for c in CASES}
    assert rules == {
        (s.id, x.id) for s in _rendered_sites() for x in s.sensors if x.thresholds or x.rain
    }
    windows = {(c.sensor.id, c.rule.window_h) for c in CASES if c.rule.window_h is not None}
    assert windows == {("RAIN-5M", h) for h in (1, 3, 6, 12, 24)}
    assert len(CASES) > 500


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_text(case: Case) -> None:
    event, text = case.event(), case.text()
    full = render_sms(
        event, case.site, case.sensor, role=case.role, language=case.language, max_units=None
    )
    lang = case.language
    for t in (text, full):
        assert "http" not in t.lower() and "www" not in t.lower()
        assert t.startswith("【hazwatch】" if lang == "zh-CN" else "[hazwatch] ")
        assert format_value(event.value, event.unit, lang) in t
        assert _quantity(case.sensor, case.rule, lang) in t
        if case.rule.window_h is not None:  # never the 5-minute increment the gauge reports
            assert QUANTITY_NAMES[lang][case.sensor.quantity] not in t
        assert COLOUR_WORDS[lang][case.level] in t
        assert format_time(TS, lang, date=False) in t
        assert t.endswith(action(event, case.site, role=case.role, language=lang))
        if case.kind == "cleared":
            assert ("解除" if lang == "zh-CN" else "lifted") in t
        else:
            assert ("升级" in t) == (case.kind == "escalated" and lang == "zh-CN")
            assert ("降级" in t) == (case.kind == "deescalated" and lang == "zh-CN")
    # The full text carries everything; the sent one equals it whenever it fits the budget.
    if case.kind != "cleared":
        assert format_value(event.threshold, event.unit, lang) in full  # type: ignore[arg-type]
    assert format_time(TS, lang) in full
    if case.role != "resident":
        assert case.sensor.id in full
    if _utf16(full) <= MAX_UNITS:
        assert text == full
    else:
        assert lang == "en", "every Chinese text of the example sites fits without trimming"
    # Two segments even when a gateway sends everything as UCS-2 (STANDARDS: red within two).
    assert _utf16(text) <= MAX_UNITS == 134
    assert segments(text) <= 2, (units(text), text)


@pytest.mark.parametrize(
    ("site", "sensor", "level", "kind", "role", "language", "expected"),
    [
        ("TD-001", "PZ-01", "red", "raised", "resident", "zh-CN", 1),
        ("TD-001", "PZ-01", "red", "escalated", "resident", "zh-CN", 2),
        ("TD-001", "PZ-01", "red", "cleared", "resident", "zh-CN", 1),
        ("TD-001", "PZ-01", "red", "raised", "officer", "zh-CN", 2),
        ("TD-001", "PZ-01", "red", "raised", "resident", "en", 1),
        ("RG-001", "RAIN-5M", "red", "raised", "resident", "zh-CN", 2),  # the 1 h window
        ("RG-001", "RAIN-5M", "orange", "raised", "resident", "zh-CN", 2),
        ("CH-001", "GT-102", "red", "escalated", "operator", "zh-CN", 2),
        ("CH-001", "GT-101", "red", "raised", "resident", "en", 2),
        ("CH-001", "LT-201", "yellow", "deescalated", "officer", "zh-CN", 2),
    ],
)
def test_segment_counts(
    site: str, sensor: str, level: str, kind: str, role: str, language: str, expected: int
) -> None:
    assert segments(_case(site, sensor, level, kind, role, language).text()) == expected


def test_red_resident_text_tailings_exact() -> None:
    text = _case("TD-001", "PZ-01", "red", "raised", "resident", "zh-CN").text()
    assert text == (
        "【hazwatch】夏河尾矿库浸润线埋深红色预警：11月23日14:05降至3.9m（预警值4m）。"
        "立即转移！向两侧高处撤离，远离下游！"
    )
    assert units(text) == 68 and segments(text) == 1


def test_mountain_torrent_action_words() -> None:
    red = _case("RG-001", "RAIN-5M", "red", "raised", "resident", "zh-CN").text()
    orange = _case("RG-001", "RAIN-5M", "orange", "raised", "resident", "zh-CN").text()
    assert "立即转移" in red and "准备转移" not in red
    assert "准备转移" in orange and "立即转移" not in orange
    assert "81mm" in red and "预警值80mm" in red
    assert red == (
        "【hazwatch】石桥沟雨量站1小时雨量红色预警：11月23日14:05达81mm（预警值80mm）。"
        "立即转移！迅速撤到安全避险点，远离河沟！"
    )
    escalated = _case("RG-001", "RAIN-5M", "red", "escalated", "resident", "zh-CN").text()
    assert "立即转移" in escalated and "由橙色升级为红色预警" in escalated
    assert "EVACUATE NOW" in _case("RG-001", "RAIN-5M", "red", "raised", "resident", "en").text()
    # Whichever window decides, the same action words; the text names that window.
    red_3h = _case("RG-001", "RAIN-5M", "red", "raised", "resident", "zh-CN", 3).text()
    assert red_3h == (
        "【hazwatch】石桥沟雨量站3小时雨量红色预警：11月23日14:05达101mm（预警值100mm）。"
        "立即转移！迅速撤到安全避险点，远离河沟！"
    )
    orange_24h = _case("RG-001", "RAIN-5M", "orange", "raised", "resident", "en", 24).text()
    assert "24 h rainfall 161 mm" in orange_24h and "PREPARE TO EVACUATE" in orange_24h
    assert "5-min" not in orange_24h


def test_responders_are_asked_to_answer() -> None:
    operator = _case("TD-001", "PZ-01", "red", "raised", "operator", "zh-CN").text()
    officer = _case("TD-001", "PZ-01", "red", "raised", "officer", "zh-CN").text()
    assert "核实" in operator and "反馈" in operator
    assert "启动应急响应" in officer
    assert (
        "PZ-01" in operator
        and "PZ-01" not in _case("TD-001", "PZ-01", "red", "raised", "resident", "zh-CN").text()
    )


def test_all_clear_references_peak_and_raising_time() -> None:
    site = _config().site("TD-001")
    sensor = next(s for s in site.sensors if s.id == "PZ-01")
    event = _event(site, sensor, _rules_of(sensor)[0], "yellow", "cleared")
    event.detail.update(peak="red", raised_ts=RAISED_TS)
    zh = render_sms(event, site, sensor, role="resident")
    en = render_sms(event, site, sensor, role="resident", language="en")
    assert "夏河尾矿库浸润线埋深红色预警已解除（原预警时间11月23日13:05）" in zh
    assert "Red warning lifted (issued 13:05), Xiahe tailings dam" in en
    full = render_sms(event, site, sensor, role="resident", language="en", max_units=None)
    assert "Red warning lifted (issued 13:05 23 Nov)" in full
    assert "黄色" not in zh
    assert segments(zh) <= 2 and segments(en) <= 2
    event.detail["raised_ts"] = np.int64(RAISED_TS)  # in-process events may carry numpy ints
    assert "（原预警时间11月23日13:05）" in render_sms(event, site, sensor, role="resident")
    event.detail["raised_ts"] = -1  # the rule engine's "no episode start known"
    zh = render_sms(event, site, sensor, role="resident")
    assert "红色预警已于11月23日14:05解除" in zh and "原预警时间" not in zh


def test_sensor_none_uses_detail_quantity() -> None:
    case = _case("TD-001", "FB-01", "orange", "raised", "operator", "zh-CN")
    text = render_sms(case.event(), case.site, None, role="operator")
    assert "安全超高橙色预警" in text


def test_english_uses_name_en_and_stays_gsm7() -> None:
    case = _case("CH-001", "LT-201", "red", "raised", "resident", "en")
    text = case.text()
    assert text == (
        "[hazwatch] Red warning, Lingang Petrochemical tank farm: tank level 9.3 m at 14:05. "
        "Close windows NOW, evacuate upwind when told!"
    )
    assert text.isascii() and encoding(text) == "GSM-7"
    # Over two UCS-2 segments in full, so the date and the threshold were given up.
    full = render_sms(
        case.event(), case.site, case.sensor, role="resident", language="en", max_units=None
    )
    assert "(limit 9.2 m) at 14:05 23 Nov." in full and _utf16(full) > MAX_UNITS


def test_budget_shortens_a_long_site_name_last() -> None:
    case = _case("TD-001", "PZ-01", "red", "escalated", "operator", "zh-CN")
    site = case.site.model_copy(
        update={"name": "江西省萍乡市湘东区某某镇某某矿业有限公司夏河沟尾矿库" * 3}
    )
    text = render_sms(case.event(), site, case.sensor, role="operator")
    assert _utf16(text) <= MAX_UNITS and segments(text) == 2
    assert "…" in text and "红色预警" in text and "3.9m" in text
    assert text.endswith(action(case.event(), site, role="operator"))


def test_local_time_conversion() -> None:
    assert format_time(TS) == "11月23日14:05"
    assert format_time(TS, "en") == "14:05 23 Nov"
    assert format_time(TS, "zh-CN", tz="UTC") == "11月23日06:05"
    assert format_time(TS - 15 * 3_600_000) == "11月22日23:05"


@pytest.mark.parametrize(
    ("value", "unit", "language", "expected"),
    [
        (3.9, "m", "zh-CN", "3.9m"),
        (4.0, "m", "zh-CN", "4m"),
        (351.25, "m", "en", "351.25 m"),
        (0.912, "m", "zh-CN", "0.912m"),
        (55.556, "%LEL", "zh-CN", "55.56%LEL"),
        (-0.0001, "mm", "zh-CN", "0mm"),
        (-12.5, "mm", "en", "-12.5 mm"),
    ],
)
def test_format_value(value: float, unit: str, language: str, expected: str) -> None:
    assert format_value(value, unit, language) == expected


def test_tables_cover_every_quantity_and_level() -> None:
    for lang in LANGUAGES:
        assert set(QUANTITY_NAMES[lang]) == set(QUANTITY_UNITS)
        assert set(COLOUR_WORDS[lang]) == set(LEVELS) - {"normal"}
    assert QUANTITY_NAMES["zh-CN"]["phreatic_depth"] == "浸润线埋深"
    assert COLOUR_WORDS["zh-CN"]["red"] == "红色预警"


def test_bad_role_and_level_are_rejected() -> None:
    case = _case("TD-001", "PZ-01", "red", "raised", "resident", "zh-CN")
    with pytest.raises(ValueError):
        render_sms(case.event(), case.site, case.sensor, role="mayor")
    with pytest.raises(ValueError):
        render_sms(case.event(), case.site, case.sensor, role="resident", language="fr")


def test_custom_sender_tag() -> None:
    case = _case("TD-001", "PZ-01", "red", "raised", "resident", "zh-CN")
    text = render_sms(case.event(), case.site, case.sensor, role="resident", tag="【萍乡应急】")
    assert text.startswith("【萍乡应急】夏河尾矿库")


def test_a_site_rule_is_named_by_its_own_name_in_both_languages_and_is_no_measuring_point() -> None:
    from alerts.render import describe, headline
    from config.loader import example_dir, load_config
    from formats.warning import WarningEvent

    config = load_config(example_dir())
    site = config.site("TD-001")
    ev = WarningEvent(episode="e", site="TD-001", subject="TD-001/storm_seepage", rule="storm_seepage",
                      kind="raised", level="orange", previous="normal", ts=1_767_225_600_000, emitted_at=0,
                      value=4.6, threshold=None, unit="m",
                      detail={"quantity": "暴雨叠加浸润线上升", "name_en": "storm with a rising phreatic line",
                              "site_rule": "composite"})
    assert headline(ev, site, None) == "夏河尾矿库暴雨叠加浸润线上升橙色预警"
    assert headline(ev, site, None, language="en") == "Orange warning: storm with a rising phreatic line, Xiahe tailings dam"
    assert "测点" not in describe(ev, site, None, point=True)
