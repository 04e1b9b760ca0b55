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
from zoneinfo import ZoneInfo

from alerts.segments import MAX_UNITS, fit
from alerts.words import (
    COLOUR_WORDS,
    COLOURS,
    QUANTITY_NAMES,
    RESIDENT_ACTIONS,
    RESPONDER_ACTIONS,
    ROLES,
    SENDER_TAGS,
    Lang,
)
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
            return RESIDENT_ACTIONS[lang]["*", event.kind]
        return RESIDENT_ACTIONS[lang][site.kind, event.level]
    return RESPONDER_ACTIONS[lang][role, "normal" if event.kind == "cleared" else event.level]


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
