"""SMS text for warning events: pure functions, no I/O.

One text per (event, role, language). Rules the texts follow (``STANDARDS.md`` "Warning
dissemination"):

- a sender tag first (mainland SMS carry a 【signature】), then site, quantity, colour word, the
  deciding value with its unit, the threshold, the local time of the reading, and an action;
- a rain rule's event names the window that decided it (``detail["window_h"]``: 3小时雨量), not
  the gauge's 5-minute increments, since its value and threshold are that window's sum and rung;
- no URLs, ever (mainland carriers block SMS with links);
- Chinese forces UCS-2 (70 units in one SMS, 67 per segment), some gateways send everything as
  UCS-2, and red must fit in two segments: every text is kept within :data:`MAX_UNITS` (134 UTF-16
  units, :mod:`alerts.segments`, which fits every renderer's texts) by giving up the least useful
  details first (:func:`render_sms`);
- mountain-torrent resident texts carry the two action words of village warnings, 准备转移
  (orange) and 立即转移 (red).

Residents get what to do (by site kind and level); operators and officers get what to answer
(核实/反馈, 启动应急响应): regulators require a warning to be actively answered (叫应). An
all-clear names site, quantity and the episode's peak colour (``detail["peak"]``), and quotes
``detail["raised_ts"]`` (epoch ms) as the original warning time when the rule engine supplies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from alerts.segments import MAX_UNITS, fit
from config.models import Sensor, Site
from formats.warning import WarningEvent

__all__ = [
    "COLOURS",
    "COLOUR_WORDS",
    "MAX_UNITS",
    "QUANTITY_NAMES",
    "ROLES",
    "SENDER_TAGS",
    "action",
    "describe",
    "format_time",
    "format_value",
    "headline",
    "language_of",
    "quantity_name",
    "quantity_of",
    "render_sms",
]

Lang = Literal["zh-CN", "en"]

#: Sender signature put first in every SMS. Mainland carriers require a 【signature】 registered
#: with the SMS template; change it to the registered one (e.g. 【XX应急】). The English tag
#: uses ASCII brackets so that an all-ASCII text stays in GSM-7 (160/153 per segment).
SENDER_TAGS: dict[str, str] = {"zh-CN": "【hazwatch】", "en": "[hazwatch]"}

ROLES: tuple[str, ...] = ("operator", "officer", "regulator", "resident")

#: Colour adjectives per level.
_LEVEL_COLOURS = {
    "blue": ("蓝色", "Blue"),
    "yellow": ("黄色", "Yellow"),
    "orange": ("橙色", "Orange"),
    "red": ("红色", "Red"),
    "normal": ("正常", "Normal"),
}
COLOURS: dict[str, dict[str, str]] = {
    lang: {lvl: names[i] for lvl, names in _LEVEL_COLOURS.items()}
    for i, lang in enumerate(("zh-CN", "en"))
}

#: The colour word of a warning level, as the public knows it (蓝/黄/橙/红色预警).
COLOUR_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {lvl: f"{COLOURS['zh-CN'][lvl]}预警" for lvl in ("blue", "yellow", "orange", "red")},
    "en": {lvl: f"{COLOURS['en'][lvl]} warning" for lvl in ("blue", "yellow", "orange", "red")},
}

#: Names of every quantity in :data:`config.models.QUANTITY_UNITS`, (zh-CN, en).
_QUANTITIES: dict[str, tuple[str, str]] = {
    "combustible_gas": ("可燃气体浓度", "combustible gas"),
    "toxic_gas": ("有毒气体浓度", "toxic gas"),
    "oxygen": ("氧气浓度", "oxygen"),
    "tank_level": ("储罐液位", "tank level"),
    "temperature": ("温度", "temperature"),
    "pressure": ("压力", "pressure"),
    "phreatic_depth": ("浸润线埋深", "phreatic depth"),
    "freeboard": ("安全超高", "freeboard"),
    "dry_beach_length": ("干滩长度", "dry beach length"),
    "pond_level": ("库水位", "pond level"),
    "surface_displacement": ("表面位移", "surface displacement"),
    "rain_increment": ("5分钟雨量", "5-min rainfall"),
    "rain_1h": ("1小时雨量", "1-h rainfall"),
}
QUANTITY_NAMES: dict[str, dict[str, str]] = {
    lang: {q: names[i] for q, names in _QUANTITIES.items()}
    for i, lang in enumerate(("zh-CN", "en"))
}

# What residents do, by site kind and level, per language. Rain: the mountain-torrent action words
# (STANDARDS "Warning levels in Chinese practice": orange 准备转移, red 立即转移). Tailings: a
# dam-break flow runs down the valley, so residents climb to the sides. Chemical: shelter first,
# then evacuate upwind when told.
_RESIDENT: dict[str, dict[tuple[str, str], str]] = {
    "zh-CN": {
        ("rain", "red"): "立即转移！迅速撤到安全避险点，远离河沟！",
        ("rain", "orange"): "准备转移！收拾必要物品，听从村组指挥。",
        ("rain", "yellow"): "注意防范山洪，远离河沟，关注后续预警。",
        ("rain", "blue"): "关注雨情，远离河沟。",
        ("tailings", "red"): "立即转移！向两侧高处撤离，远离下游！",
        ("tailings", "orange"): "做好转移准备，远离下游沟谷，听从村组通知。",
        ("tailings", "yellow"): "远离下游沟谷，关注后续预警。",
        ("tailings", "blue"): "请关注后续预警。",
        ("chemical", "red"): "立即关闭门窗，听从指挥向上风向撤离！",
        ("chemical", "orange"): "关闭门窗，减少外出，做好撤离准备。",
        ("chemical", "yellow"): "减少外出，关注后续预警。",
        ("chemical", "blue"): "请关注后续预警。",
        # After a step down or the all-clear nobody returns before being told to.
        ("*", "deescalated"): "已转移人员暂勿返回，继续注意防范。",
        ("*", "cleared"): "已转移人员请听从通知后返回。",
    },
    "en": {
        ("rain", "red"): "EVACUATE NOW, keep away from streams!",
        ("rain", "orange"): "PREPARE TO EVACUATE, follow village orders.",
        ("rain", "yellow"): "Beware of flash floods, keep away from streams.",
        ("rain", "blue"): "Watch the rain, keep away from streams.",
        ("tailings", "red"): "EVACUATE NOW to high ground, away from the valley!",
        ("tailings", "orange"): "Prepare to evacuate, keep out of the valley.",
        ("tailings", "yellow"): "Keep out of the valley below the dam.",
        ("tailings", "blue"): "Watch for updates.",
        ("chemical", "red"): "Close windows NOW, evacuate upwind when told!",
        ("chemical", "orange"): "Close windows, stay indoors, prepare to evacuate.",
        ("chemical", "yellow"): "Limit time outdoors, watch for updates.",
        ("chemical", "blue"): "Watch for updates.",
        ("*", "deescalated"): "Evacuees: do not return yet, stay alert.",
        ("*", "cleared"): "Evacuees return only when told to.",
    },
}

# What the people who must answer (叫应) do, by role and level (normal: the all-clear).
# Operators verify and dispatch; officers respond on site; regulators press the enterprise.
_RESPONDER: dict[str, dict[tuple[str, str], str]] = {
    "zh-CN": {
        ("operator", "red"): "请立即核实，启动应急响应并反馈处置情况。",
        ("operator", "orange"): "请立即核实并反馈处置情况。",
        ("operator", "yellow"): "请及时核实并反馈处置情况。",
        ("operator", "blue"): "请关注并核实。",
        ("operator", "normal"): "请核实现场并完成处置反馈。",
        ("officer", "red"): "请立即启动应急响应，组织人员撤离并反馈！",
        ("officer", "orange"): "请立即现场核实并反馈处置情况。",
        ("officer", "yellow"): "请及时现场核实并反馈处置情况。",
        ("officer", "blue"): "请关注并核实。",
        ("officer", "normal"): "请反馈处置结果并做好记录。",
        ("regulator", "red"): "请督促企业立即处置并组织撤离。",
        ("regulator", "orange"): "请督促企业立即核实处置。",
        ("regulator", "yellow"): "请关注并督促企业核实。",
        ("regulator", "blue"): "请关注。",
        ("regulator", "normal"): "请督促企业完成处置反馈。",
    },
    "en": {
        ("operator", "red"): "Verify now, start emergency response, report.",
        ("operator", "orange"): "Verify now and report actions.",
        ("operator", "yellow"): "Please verify and report actions.",
        ("operator", "blue"): "Please watch and verify.",
        ("operator", "normal"): "Verify on site and close out the report.",
        ("officer", "red"): "Start emergency response now, evacuate, report!",
        ("officer", "orange"): "Verify on site now and report actions.",
        ("officer", "yellow"): "Verify on site and report actions.",
        ("officer", "blue"): "Please watch and verify.",
        ("officer", "normal"): "Report the outcome and close the record.",
        ("regulator", "red"): "Press the enterprise to act and evacuate now.",
        ("regulator", "orange"): "Press the enterprise to verify and act now.",
        ("regulator", "yellow"): "Watch and press the enterprise to verify.",
        ("regulator", "blue"): "Please watch.",
        ("regulator", "normal"): "Press the enterprise to close out its report.",
    },
}


# Not strftime("%b"): that follows the process locale.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def language_of(language: str) -> Lang:
    """``"zh-CN"`` or ``"en"`` for a language tag (``zh``, ``zh-CN``, ``en``, ``en-US`` ...)."""
    low = language.lower()
    if low.startswith("zh"):
        return "zh-CN"
    if low.startswith("en"):
        return "en"
    raise ValueError(f"unsupported language {language!r} (zh-CN or en)")


def _number(value: float) -> str:
    """Readable number: 2 decimals from 1 up, 3 below; trailing zeros dropped; no exponent."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.{2 if abs(value) >= 1 else 3}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def format_value(value: float, unit: str, language: str = "zh-CN") -> str:
    """``"3.9m"`` in Chinese (no space, as Chinese text writes it), ``"3.9 m"`` in English."""
    sep = "" if language_of(language) == "zh-CN" else " "
    return f"{_number(value)}{sep}{unit}" if unit else _number(value)


def format_time(
    ts_ms: int, language: str = "zh-CN", tz: str = "Asia/Shanghai", *, date: bool = True
) -> str:
    """Local time of an epoch-ms timestamp: ``"11月23日14:05"`` or ``"14:05 23 Nov"``."""
    t = datetime.fromtimestamp(ts_ms / 1000, ZoneInfo(tz))
    if not date:
        return f"{t:%H:%M}"
    if language_of(language) == "zh-CN":
        return f"{t.month}月{t.day}日{t:%H:%M}"
    return f"{t:%H:%M} {t.day} {_MONTHS[t.month - 1]}"


def quantity_of(event: WarningEvent, sensor: Sensor | None) -> str:
    """The measured quantity: the sensor's, else ``detail["quantity"]``, else the rule name."""
    if sensor is not None:
        return sensor.quantity
    return str(event.detail.get("quantity") or event.rule)


def _window_h(event: WarningEvent) -> int | None:
    """Hours of the rain window that decided the event (``detail["window_h"]``), if any."""
    raw = event.detail.get("window_h")
    if raw is None or isinstance(raw, bool):
        return None
    try:
        hours = float(raw)  # an int, a numpy integer in-process, or a number from JSON
    except (TypeError, ValueError):
        return None
    if not math.isfinite(hours) or hours <= 0 or hours != int(hours):
        return None
    return int(hours)


def quantity_name(event: WarningEvent, sensor: Sensor | None, language: str = "zh-CN") -> str:
    """What a text calls the event's quantity: ``"3小时雨量"``/``"3 h rainfall"`` for a rain
    rule's event (``detail["window_h"]``: its value and threshold are that window's sum and
    rung, not the sensor's 5-minute increment), else the name of :func:`quantity_of`."""
    lang = language_of(language)
    hours = _window_h(event)
    if hours is not None:
        return f"{hours}小时雨量" if lang == "zh-CN" else f"{hours} h rainfall"
    if event.detail.get("site_rule") and lang == "en" and event.detail.get("name_en"):
        return str(event.detail["name_en"])  # a site rule's own name (rules/site.py)
    quantity = quantity_of(event, sensor)
    return QUANTITY_NAMES[lang].get(quantity, quantity)


def _colour(level: str, lang: Lang) -> str:
    return COLOURS[lang].get(level, level)


def _peak(event: WarningEvent) -> str:
    return str(event.detail.get("peak") or event.previous)


def _raised_ts(event: WarningEvent) -> int | None:
    """Epoch ms of the reading that raised the episode, when the rule engine supplied one."""
    try:
        ts = int(event.detail["raised_ts"])  # an int, or a numpy integer in-process
    except (KeyError, TypeError, ValueError):
        return None
    return ts if ts >= 0 else None


def _verb_zh(event: WarningEvent) -> str:
    """达/降至 toward the danger side (raised, escalated), 实测 otherwise."""
    if event.kind in ("raised", "escalated"):
        return "降至" if event.detail.get("direction") == "low" else "达"
    return "实测"


def _site_name(site: Site, lang: Lang) -> str:
    return site.name if lang == "zh-CN" else (site.name_en or site.name)


def headline(
    event: WarningEvent, site: Site, sensor: Sensor | None, *, language: str = "zh-CN"
) -> str:
    """Short title: ``"夏河尾矿库浸润线埋深红色预警"``, ``"…红色预警解除"`` for the all-clear."""
    lang = language_of(language)
    name, qty = _site_name(site, lang), quantity_name(event, sensor, lang)
    cleared = event.kind == "cleared"
    colour = _colour(_peak(event) if cleared else event.level, lang)
    if lang == "zh-CN":
        return f"{name}{qty}{colour}预警{'解除' if cleared else ''}"
    return f"{colour} warning{' lifted' if cleared else ''}: {qty}, {name}"


@dataclass(frozen=True, slots=True)
class _Detail:
    """What a text says beyond the essentials; :func:`render_sms` drops items to fit the budget."""

    date: bool = True  # 11月23日14:05 vs 14:05
    previous: bool = True  # 由橙色升级为红色预警 vs 升级为红色预警
    threshold: bool = True
    point: bool = False  # the measuring point (sensor id), for operators and officers


# Items given up, in order, when a text is over budget: the least useful first. Colour word,
# site, quantity, value and action are never dropped.
_FALLBACKS = ("date", "previous", "threshold", "point")


def describe(
    event: WarningEvent,
    site: Site,
    sensor: Sensor | None,
    *,
    language: str = "zh-CN",
    tz: str = "Asia/Shanghai",
    point: bool = False,
) -> str:
    """What happened, without tag or action; ``point`` names the measuring point (sensor id)."""
    return _describe(event, site, sensor, language_of(language), tz, _Detail(point=point))


def _describe(
    event: WarningEvent,
    site: Site,
    sensor: Sensor | None,
    lang: Lang,
    tz: str,
    d: _Detail,
    name: str | None = None,
) -> str:
    zh = lang == "zh-CN"
    place = name if name is not None else _site_name(site, lang)
    if d.point and not event.detail.get("site_rule"):  # a site rule is no measuring point
        place = f"{place}{event.sensor}测点" if zh else f"{place} {event.sensor}"
    qty = quantity_name(event, sensor, lang)
    when = format_time(event.ts, lang, tz, date=d.date)
    val = format_value(event.value, event.unit, lang)
    thr = None
    if d.threshold and event.threshold is not None:
        thr = format_value(event.threshold, event.unit, lang)
    colour = _colour(event.level, lang)
    prev = _colour(event.previous, lang) if d.previous else ""

    if event.kind == "cleared":
        peak = _colour(_peak(event), lang)
        raised_ts = _raised_ts(event)
        since = format_time(raised_ts, lang, tz, date=d.date) if raised_ts is not None else None
        if zh:
            if since is not None:
                return f"{place}{qty}{peak}预警已解除（原预警时间{since}），{when}实测{val}。"
            return f"{place}{qty}{peak}预警已于{when}解除，实测{val}。"
        issued = f" (issued {since})" if since is not None else ""
        return f"{peak} warning lifted{issued}, {place}: {qty} {val} at {when}."

    if zh:
        ref = f"（预警值{thr}）" if thr is not None else ""
        origin = f"由{prev}" if prev else ""
        if event.kind == "escalated":
            head = f"{place}{qty}预警{origin}升级为{colour}预警"
        elif event.kind == "deescalated":
            head = f"{place}{qty}预警{origin}降级为{colour}预警"
        else:
            head = f"{place}{qty}{colour}预警"
        return f"{head}：{when}{_verb_zh(event)}{val}{ref}。"
    ref = f" (limit {thr})" if thr is not None else ""
    if event.kind == "escalated":
        head = f"{colour} warning (up from {prev.lower()})" if prev else f"{colour} warning (up)"
    elif event.kind == "deescalated":
        head = (
            f"{colour} warning (down from {prev.lower()})" if prev else f"{colour} warning (down)"
        )
    else:
        head = f"{colour} warning"
    return f"{head}, {place}: {qty} {val}{ref} at {when}."


def action(event: WarningEvent, site: Site, *, role: str, language: str = "zh-CN") -> str:
    """The instruction for ``role``: residents by site kind and level, responders by level."""
    lang = language_of(language)
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (one of {list(ROLES)})")
    if role == "resident":
        if event.kind in ("deescalated", "cleared"):
            return _RESIDENT[lang]["*", event.kind]
        return _RESIDENT[lang][site.kind, event.level]
    return _RESPONDER[lang][role, "normal" if event.kind == "cleared" else event.level]


def render_sms(
    event: WarningEvent,
    site: Site,
    sensor: Sensor | None,
    *,
    role: str,
    language: str = "zh-CN",
    tz: str = "Asia/Shanghai",
    tag: str | None = None,
    max_units: int | None = MAX_UNITS,
) -> str:
    """The SMS body for one recipient role and language.

    ``tag`` overrides the sender signature of :data:`SENDER_TAGS`. A text longer than
    ``max_units`` UTF-16 units (default two UCS-2 segments, STANDARDS "Warning dissemination":
    keep red within two) gives up, in order, the date, the previous colour, the threshold and the
    measuring point, and last shortens the site name; ``None`` renders everything.
    """
    lang = language_of(language)
    if event.kind != "cleared" and event.level not in COLOUR_WORDS[lang]:
        raise ValueError(f"a {event.kind} event needs a warning level, got {event.level!r}")
    sep = "" if lang == "zh-CN" else " "
    prefix = SENDER_TAGS[lang] if tag is None else tag
    todo = action(event, site, role=role, language=lang)

    def text(d: _Detail, name: str) -> str:
        return f"{prefix}{sep}{_describe(event, site, sensor, lang, tz, d, name)}{sep}{todo}"

    detail, name = _Detail(point=role != "resident"), _site_name(site, lang)
    if max_units is None:
        return text(detail, name)
    return fit(text, detail, _FALLBACKS, name, max_units)
