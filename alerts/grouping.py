"""One SMS for several changes of one site to one recipient (issue 3 "Noise control": grouping).

Pure, like :mod:`alerts.render`, whose words it reuses. Changes of one site that arrive within
``group_wait`` go out as one text per recipient (red never waits:
:func:`alerts.noise.group_wait_until`).

- One change: exactly :func:`alerts.render.render_sms`.
- Several: the highest colour word in front, the warnings most severe first, the all-clears as a
  separate clause, the latest reading time, and the action of the most severe change
  (:func:`alerts.render.action`)::

      【hazwatch】夏河尾矿库橙色预警（共3项）：干滩长度橙色73.5m，安全超高黄色0.84m，浸润线埋深
      黄色4.6m；库水位黄色预警解除（11月23日14:05）。做好转移准备，远离下游沟谷，听从村组通知。

- Several changes of one episode (raised, then escalated within the wait) count once: the latest
  says where the episode stands (:func:`latest_per_episode`).
- Budget: two UCS-2 segments (:data:`alerts.segments.MAX_UNITS`, 134 UTF-16 units), even for an
  all-ASCII English text (some gateways send everything as UCS-2). Over budget, the text gives up,
  in order (:func:`_shapes`): the date; the measuring points (responders only); the words
  升为/降为 (up to/down to); the colour of items at the level already named in front; the
  all-clear items, down to a count (``3项预警解除``, ``3 lifted``); the least severe warnings
  (``等N项``: N counts all warnings, as Chinese lists do; ``and N more``: N counts the hidden
  ones, as English does); the separate all-clear count (merged into ``等N项``/``and N more``);
  the reading time (the text goes out within seconds of it, and the site matters more); and last
  shortens the site name. The colour word, the site, the most severe item and the action stay.
  English texts, being longer, reach the later steps sooner.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from alerts.render import (
    COLOUR_WORDS,
    COLOURS,
    SENDER_TAGS,
    action,
    format_time,
    format_value,
    language_of,
    quantity_name,
    render_sms,
)
from alerts.segments import first_fitting, shortened
from config.models import LEVELS, Sensor, Site
from formats.warning import WarningEvent

__all__ = ["latest_per_episode", "order_by_severity", "render_group"]

Lang = Literal["zh-CN", "en"]

_RANK: dict[str, int] = {level: i for i, level in enumerate(LEVELS)}
# Within a level, a rising or new warning is more urgent than one stepping down.
_KIND_ORDER = {"raised": 0, "escalated": 0, "deescalated": 1, "cleared": 2}


def latest_per_episode(events: Iterable[WarningEvent]) -> list[WarningEvent]:
    """The latest change of each episode (by reading time, then emission time), in input order."""
    latest: dict[str, WarningEvent] = {}
    for e in events:
        kept = latest.get(e.episode)
        if kept is None or (e.ts, e.emitted_at) >= (kept.ts, kept.emitted_at):
            latest[e.episode] = e
    return list(latest.values())


def _peak(event: WarningEvent) -> str:
    return str(event.detail.get("peak") or event.previous)


def order_by_severity(events: Iterable[WarningEvent]) -> list[WarningEvent]:
    """Warnings most severe first, then all-clears by the peak they end; ties: newest, subject."""

    def key(e: WarningEvent) -> tuple[bool, int, int, int, str]:
        cleared = e.kind == "cleared"
        level = _peak(e) if cleared else e.level
        return (cleared, -_RANK.get(level, 0), _KIND_ORDER[e.kind], -e.ts, e.subject)

    return sorted(events, key=key)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a grouped text shows; :func:`render_group` gives details up to fit the budget."""

    time: bool  # the reading time at all: given up before the site name is cut
    date: bool  # 11月23日14:05 vs 14:05
    point: bool  # measuring points (sensor ids), responders only
    verbs: bool  # 升为/降为, up to/down to
    warnings: int  # warning items shown (the most severe first), >= 1 when there are warnings
    clears: int  # all-clear items shown; the others are counted
    lean: bool  # items at the top level leave their colour to the colour word in front
    merged: bool  # one count for the hidden warnings and every all-clear
    name: str


def render_group(
    events: list[WarningEvent],
    site: Site,
    sensors: Mapping[str, Sensor | None],
    *,
    role: str,
    language: str = "zh-CN",
    tz: str = "Asia/Shanghai",
) -> str:
    """The SMS for several changes of ``site`` to one recipient of ``role`` (module docstring).

    ``sensors`` maps sensor ids (:attr:`WarningEvent.sensor`) or subjects (``site/sensor``) to
    their configuration; a missing or ``None`` entry falls back to ``detail["quantity"]`` as in
    :func:`alerts.render.quantity_of`; a rain rule's event is named by its window
    (:func:`alerts.render.quantity_name`). The time is that of the latest reading in the group.
    The text stays within :data:`~alerts.segments.MAX_UNITS` for every example site, role and
    language; a configuration whose words cannot fit even with the site name cut to 4 characters
    gets the shortest text rather than one without its colour word, top item or action.
    """
    if not events:
        raise ValueError("render_group needs at least one event")
    foreign = sorted({e.site for e in events} - {site.id})
    if foreign:
        raise ValueError(f"every event must be of site {site.id!r}, got events of {foreign}")
    lang = language_of(language)
    for e in events:
        if e.kind != "cleared" and e.level not in COLOUR_WORDS[lang]:
            raise ValueError(f"a {e.kind} event needs a warning level, got {e.level!r}")
    current = order_by_severity(latest_per_episode(events))
    if len(current) == 1:
        e = current[0]
        return render_sms(e, site, _sensor(e, sensors), role=role, language=lang, tz=tz)

    warnings = [e for e in current if e.kind != "cleared"]
    clears = [e for e in current if e.kind == "cleared"]
    todo = action(current[0], site, role=role, language=lang)
    ts = max(e.ts for e in current)

    def text(s: _Shape) -> str:
        return _text(warnings, clears, s, sensors, lang, tz, ts, todo)

    return first_fitting(text(shape) for shape in _shapes(len(warnings), len(clears), role, _site_name(site, lang)))


def _shapes(n_warnings: int, n_clears: int, role: str, name: str) -> Iterator[_Shape]:
    """Candidate shapes from the richest to the most compact; the first that fits is sent."""
    s = _Shape(
        time=True,
        date=True,
        point=role != "resident",
        verbs=True,
        warnings=n_warnings,
        clears=n_clears,
        lean=False,
        merged=False,
        name=name,
    )
    yield s
    s = replace(s, date=False)
    yield s
    if s.point:
        s = replace(s, point=False)
        yield s
    s = replace(s, verbs=False)
    yield s
    if n_warnings:
        s = replace(s, lean=True)
        yield s
    # Without warnings the text keeps one all-clear item: it has nothing else to say.
    for n in range(n_clears - 1, -1 if n_warnings else 0, -1):
        s = replace(s, clears=n)
        yield s
    for n in range(n_warnings - 1, 0, -1):
        s = replace(s, warnings=n)
        yield s
    if n_warnings and n_clears:
        s = replace(s, merged=True)
        yield s
    s = replace(s, time=False)
    yield s
    for name_ in shortened(name):
        s = replace(s, name=name_)
        yield s


def _text(
    warnings: list[WarningEvent],
    clears: list[WarningEvent],
    s: _Shape,
    sensors: Mapping[str, Sensor | None],
    lang: Lang,
    tz: str,
    ts: int,
    todo: str,
) -> str:
    zh = lang == "zh-CN"
    when = format_time(ts, lang, tz, date=s.date) if s.time else ""
    top = warnings[0].level if warnings else None
    shown_w = [
        _warning_item(e, sensors, lang, s.point, s.verbs, colour=not (s.lean and e.level == top))
        for e in warnings[: s.warnings]
    ]
    shown_c: list[str] = []
    if not s.merged:
        shown_c = [_clear_item(e, sensors, lang, s.point) for e in clears[: s.clears]]
    hidden_w = len(warnings) - len(shown_w)
    whole = len(warnings) > 1 and not hidden_w  # every one of several warnings is shown
    if not warnings:
        if zh:
            count = f"（共{len(clears)}项）" if len(clears) == len(shown_c) else ""
            body = f"{s.name}预警解除{count}：" + _list_zh(shown_c, len(clears))
        else:
            body = f"Warnings lifted, {s.name}: " + _list_en(shown_c, len(clears))
    elif zh:
        total = len(warnings) + (len(clears) if s.merged else 0)
        count = f"（共{total}项）" if whole else ""
        body = f"{s.name}{COLOUR_WORDS[lang][warnings[0].level]}{count}："
        body += _list_zh(shown_w, total, sep="，")
        if clears and not s.merged:
            body += "；" + _list_zh(shown_c, len(clears)) + "预警解除"
    else:
        hidden = hidden_w + (len(clears) if s.merged else 0)
        # No count in front: English lists every item or says "and N more" (the budget is tight).
        body = f"{COLOUR_WORDS[lang][warnings[0].level]}, {s.name}: "
        body += _list_en(shown_w, len(shown_w) + hidden)
        if clears and not s.merged:
            body += "; " + (
                f"lifted: {_list_en(shown_c, len(clears))}" if shown_c else f"{len(clears)} lifted"
            )
    if zh:
        return f"{SENDER_TAGS[lang]}{body}{f'（{when}）' if when else ''}。{todo}"
    return f"{SENDER_TAGS[lang]} {body}{f' at {when}' if when else ''}. {todo}"


def _list_zh(items: list[str], total: int, sep: str = "、") -> str:
    """``甲、乙``; ``甲等3项`` when some of ``total`` are left out (N counts them all)."""
    if not items:
        return f"{total}项"
    return sep.join(items) + (f"等{total}项" if len(items) < total else "")


def _list_en(items: list[str], total: int) -> str:
    """``a, b``; ``a and 2 more`` when some of ``total`` are left out; ``3 warnings`` for none."""
    if not items:
        return f"{total} warnings"
    more = total - len(items)
    return ", ".join(items) + (f" and {more} more" if more else "")


def _warning_item(
    e: WarningEvent,
    sensors: Mapping[str, Sensor | None],
    lang: Lang,
    point: bool,
    verbs: bool,
    *,
    colour: bool = True,
) -> str:
    """``浸润线埋深升为橙色4.3m`` / ``phreatic depth up to orange 4.3 m``."""
    qty = _qty(e, sensors, lang, point)
    val = format_value(e.value, e.unit, lang)
    if not colour:  # the colour word in front says it; the verb goes with the colour
        return f"{qty}{val}" if lang == "zh-CN" else f"{qty} {val}"
    name = COLOURS[lang][e.level]
    if lang == "zh-CN":
        verb = {"escalated": "升为", "deescalated": "降为"}.get(e.kind, "") if verbs else ""
        return f"{qty}{verb}{name}{val}"
    verb = {"escalated": "up to ", "deescalated": "down to "}.get(e.kind, "") if verbs else ""
    return f"{qty} {verb}{name.lower()} {val}"


def _clear_item(
    e: WarningEvent, sensors: Mapping[str, Sensor | None], lang: Lang, point: bool
) -> str:
    """The quantity and the colour of the warning that ended: ``浸润线埋深黄色``."""
    peak = COLOURS[lang].get(_peak(e), _peak(e))
    qty = _qty(e, sensors, lang, point)
    return f"{qty}{peak}" if lang == "zh-CN" else f"{qty} {peak.lower()}"


def _qty(e: WarningEvent, sensors: Mapping[str, Sensor | None], lang: Lang, point: bool) -> str:
    name = quantity_name(e, _sensor(e, sensors), lang)
    if not point:
        return name
    return f"{e.sensor}测点{name}" if lang == "zh-CN" else f"{e.sensor} {name}"


def _sensor(e: WarningEvent, sensors: Mapping[str, Sensor | None]) -> Sensor | None:
    found = sensors.get(e.sensor)
    return found if found is not None else sensors.get(e.subject)


def _site_name(site: Site, lang: Lang) -> str:
    return site.name if lang == "zh-CN" else (site.name_en or site.name)
