"""Answer or escalate (叫应): which escalation steps and red reminders are due, and their texts.
Pure: plain functions over plain data, ``now`` passed in, no I/O.

``STANDARDS.md`` "Tailings dams": regulators require 叫应, a warning must be actively answered by
the responsible person; "Hazardous-chemical major hazard sources": warnings are handled as a closed
loop company -> county -> city -> province. Issue 3 "Answer or escalate (叫应)":

- a warning at ``cfg.min_level`` or above that the enterprise officer has not acknowledged within
  N minutes escalates to the county regulator, then the city, then the province
  (``cfg.steps``, minutes after ``escalation_since``);
- an unacknowledged red repeats its reminder every M minutes (``cfg.red_reminder_every_min``) to
  ``cfg.reminder_audiences``: reminder k is due at ``red_since + k*M``;
- acknowledgement stops the chain; so do the all-clear and closing the episode.

The timers run on the clock: the caller asks :func:`due_steps` on each tick (and :func:`next_due`
when to tick next) with the episode's stored ``escalation_since`` and ``red_since``, the times it
*first* reached ``min_level`` and red. Neither is reset within an episode: the idempotency keys of
the steps (``escalation:<tier>``, ``reminder:<k>``) are per episode.

Decisions, each tested in ``tests/alerts/test_escalation.py``:

- *Every* escalation step already due is returned, not only the newest: after a restart nothing is
  skipped, and the caller's idempotency keys stop anything being sent twice.
- Red reminders collapse: only the newest due reminder is returned. Reminders repeat one request
  to the same people, so after an outage of an hour the officers get reminder 12 once, not
  reminders 3..12 at once (a re-alert flood that would also use up the provider's per-number cap,
  ``STANDARDS.md`` "Warning dissemination"). Its number still counts from ``red_since``.
- Below ``min_level`` no escalation step is produced; steps already sent stay sent. The 叫应 clock
  is not paused by a dip: going down to yellow is not an answer, so when the level comes back the
  steps whose time has passed since ``escalation_since`` are due at once. Below red no reminder is
  produced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.render import (
    COLOUR_WORDS,
    SENDER_TAGS,
    format_time,
    format_value,
    language_of,
    quantity_name,
)
from alerts.segments import fit
from config.models import Sensor, Site, level_rank
from config.notify import Escalation
from formats.warning import WarningEvent

__all__ = ["STEP_KINDS", "Step", "due_steps", "next_due", "render_escalation", "step_of"]

STEP_KINDS: tuple[str, ...] = ("escalation", "reminder")

#: Tier words for the regulators' texts.
_TIERS = {
    "zh-CN": {"county": "县级", "city": "市级", "province": "省级"},
    "en": {"county": "county", "city": "city", "province": "province"},
}


@dataclass(frozen=True)
class Step:
    """One 叫应 step of one episode."""

    kind: str
    """``"escalation"`` or ``"reminder"``."""
    tier: str | None
    """Escalation: ``county | city | province``; ``None`` for a reminder."""
    index: int
    """Reminder number k (1, 2, ...); 0 for an escalation step."""
    due_at: datetime
    """Aware; escalation: ``escalation_since + after_min``; reminder k: ``red_since + k*M``."""
    audiences: tuple[str, ...]
    """Escalation: ``("regulators:<tier>",)``; reminder: ``cfg.reminder_audiences``."""

    @property
    def reason(self) -> str:
        """What the step is, as the outbox records it: ``escalation:county``, ``reminder:2``."""
        return f"escalation:{self.tier}" if self.kind == "escalation" else f"reminder:{self.index}"


def due_steps(
    *,
    level: str,
    escalation_since: datetime | None,
    red_since: datetime | None,
    acknowledged: bool,
    closed_or_cleared: bool,
    cfg: Escalation,
    now: datetime,
) -> list[Step]:
    """The steps due at or before ``now``: every escalation step whose time has come, then the
    newest due red reminder. Nothing when acknowledged, cleared or closed.

    ``level`` is the episode's current level; ``escalation_since`` and ``red_since`` (aware) are
    when it first reached ``cfg.min_level`` and red, ``None`` if it never did.
    """
    if acknowledged or closed_or_cleared:
        return []
    _check(now, escalation_since, red_since)
    out = [s for s in _escalations(level, escalation_since, cfg) if s.due_at <= now]
    if red_since is not None and (k := _reminders_elapsed(level, red_since, cfg, now)) >= 1:
        out.append(_reminder(k, red_since, cfg))
    return out


def step_of(reason: str, *, escalation_since: datetime | None, red_since: datetime | None,
            cfg: Escalation) -> Step:
    """The step an outbox row's ``reason`` (:attr:`Step.reason`) names, as :func:`due_steps` made it."""
    what, _, arg = reason.partition(":")
    if what == "escalation":
        if escalation_since is None:
            raise ValueError(f"{reason}: the episode never reached {cfg.min_level}")
        after = next(x.after_min for x in cfg.steps if x.tier == arg)
        return Step("escalation", arg, 0, escalation_since + timedelta(minutes=after), (f"regulators:{arg}",))
    if what != "reminder" or red_since is None:
        raise ValueError(f"{reason}: not an escalation step or a reminder of a red episode")
    k = int(arg)  # reminders may have been switched off since it was planned: then it is due at once
    every = timedelta(minutes=k * (cfg.red_reminder_every_min or 0))
    return Step("reminder", None, k, red_since + every, tuple(cfg.reminder_audiences))


def next_due(
    *,
    level: str,
    escalation_since: datetime | None,
    red_since: datetime | None,
    acknowledged: bool,
    closed_or_cleared: bool,
    cfg: Escalation,
    now: datetime,
) -> datetime | None:
    """The earliest due time after ``now`` if nothing changes (level, acknowledgement), or
    ``None`` when no step is pending: when the caller's timer should wake next."""
    if acknowledged or closed_or_cleared:
        return None
    _check(now, escalation_since, red_since)
    times = [s.due_at for s in _escalations(level, escalation_since, cfg) if s.due_at > now]
    if red_since is not None and level == "red" and cfg.red_reminder_every_min is not None:
        k = max(_reminders_elapsed(level, red_since, cfg, now), 0)
        times.append(_reminder(k + 1, red_since, cfg).due_at)
    return min(times, default=None)


def _escalations(level: str, since: datetime | None, cfg: Escalation) -> list[Step]:
    if since is None or level_rank(level) < level_rank(cfg.min_level):
        return []
    return [
        Step(
            "escalation",
            s.tier,
            0,
            since + timedelta(minutes=s.after_min),
            (f"regulators:{s.tier}",),
        )
        for s in cfg.steps
    ]


def _reminders_elapsed(
    level: str, red_since: datetime | None, cfg: Escalation, now: datetime
) -> int:
    """How many reminder periods have passed since ``red_since`` (0 when none are due)."""
    if red_since is None or level != "red" or cfg.red_reminder_every_min is None:
        return 0
    # Integer microseconds: reminder k is due exactly at red_since + k*M, with no float rounding.
    return (now - red_since) // _period(cfg)


def _period(cfg: Escalation) -> timedelta:
    assert cfg.red_reminder_every_min is not None
    return timedelta(minutes=cfg.red_reminder_every_min)


def _reminder(k: int, red_since: datetime, cfg: Escalation) -> Step:
    return Step("reminder", None, k, red_since + k * _period(cfg), tuple(cfg.reminder_audiences))


def _check(now: datetime, *others: datetime | None) -> None:
    for value in (now, *others):
        if value is not None and (value.tzinfo is None or value.utcoffset() is None):
            raise ValueError(f"叫应 times must be aware datetimes, got naive {value.isoformat()}")


# -- texts ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Detail:
    """What a text says beyond the essentials; given up in :data:`_FALLBACKS` order to fit."""

    value: bool = True  # 实测3.9m
    tier: bool = True  # （县级）
    date: bool = True  # 11月23日14:05 vs 14:05
    enterprise: bool = True  # 请督促夏河矿业有限公司 vs 请督促企业
    quantity: bool = True  # 浸润线埋深 (English only: Chinese names are short)


#: Details given up, in order, when a text is over budget. English drops the enterprise name first:
#: it is Chinese and would force UCS-2 on an otherwise GSM-7 text.
_FALLBACKS = {
    "zh-CN": ("value", "tier", "date", "enterprise"),
    "en": ("enterprise", "value", "tier", "date", "quantity"),
}


def render_escalation(
    step: Step,
    *,
    site: Site,
    sensor: Sensor | None,
    episode_level: str,
    raised_at: datetime,
    event: WarningEvent,
    language: str = "zh-CN",
    tz: str = "Asia/Shanghai",
) -> str:
    """The SMS of a 叫应 step, zh-CN (default) or en.

    Escalation (to the regulators of ``step.tier``): site, quantity, the episode's colour word,
    since when (``raised_at``), how many minutes it has gone unanswered (``step.due_at -
    raised_at``, so the text of one step never changes), and whom to press. Reminder (to officers
    and operators): its number, the same warning, and "answer now". ``event`` is the episode's
    latest level change (quantity, value and unit). No URLs. Within
    :data:`alerts.segments.MAX_UNITS` UTF-16 units (two UCS-2 segments), details are given up in
    :data:`_FALLBACKS` order (zh-CN: latest value, tier, date, enterprise name; en: the Chinese
    enterprise name first, then value, tier, date, quantity), then the site name is shortened
    (:func:`alerts.segments.fit`). Every example zh-CN text fits with all details.
    """
    lang = language_of(language)
    if episode_level not in COLOUR_WORDS[lang]:
        raise ValueError(f"a 叫应 step needs a warning level, got {episode_level!r}")
    if step.kind not in STEP_KINDS:
        raise ValueError(f"unknown step kind {step.kind!r} (one of {list(STEP_KINDS)})")
    _check(raised_at, step.due_at)
    name = site.name if lang == "zh-CN" else (site.name_en or site.name)

    def text(d: _Detail, place: str) -> str:
        return _text(step, site, sensor, episode_level, raised_at, event, lang, tz, d, place)

    return fit(text, _Detail(), _FALLBACKS[lang], name)


def _text(
    step: Step,
    site: Site,
    sensor: Sensor | None,
    level: str,
    raised_at: datetime,
    event: WarningEvent,
    lang: str,
    tz: str,
    d: _Detail,
    place: str,
) -> str:
    zh = lang == "zh-CN"
    tag = SENDER_TAGS[lang]
    qty = quantity_name(event, sensor, lang)  # a rain window names itself ("3小时雨量")
    since = format_time(int(raised_at.timestamp() * 1000), lang, tz, date=d.date)
    val = (
        format_value(event.value, event.unit, lang)
        if d.value and math.isfinite(event.value)
        else None
    )
    colour = COLOUR_WORDS[lang][level]
    if zh:
        when = f"（{since}起，实测{val}）" if val else f"（{since}起）"
        warning = f"{place}{qty}{colour}{when}"
    else:
        what = f"{colour}, {qty}, {place}" if d.quantity else f"{colour}, {place}"
        warning = f"{what} at {val}, since {since}" if val else f"{what}, since {since}"
    if step.kind == "reminder":
        if zh:
            return f"{tag}第{step.index}次提醒：{warning}仍未确认，请立即响应！"
        return f"{tag} Reminder {step.index}: {warning}, still not acknowledged. Respond now!"
    waited = max(step.due_at - raised_at, timedelta(0))
    minutes = int(waited // timedelta(minutes=1))
    # under a minute only with shortened timings (the demo): say seconds rather than "0 minutes"
    span_zh = f"{minutes}分钟" if minutes else f"{int(waited.total_seconds())}秒"
    span_en = f"{minutes} min" if minutes else f"{int(waited.total_seconds())} s"
    tier = _TIERS[lang].get(step.tier or "", step.tier or "") if d.tier else ""
    if zh:
        who = site.enterprise if d.enterprise else "企业"
        head = f"叫应升级（{tier}）" if tier else "叫应升级"
        return f"{tag}{head}：{warning}已{span_zh}未获企业响应，请督促{who}立即处置。"
    who = site.enterprise if d.enterprise else "the enterprise"
    head = f"Escalated to {tier}" if tier else "Escalated"
    return f"{tag} {head}: {warning}, unanswered {span_en}. Press {who} to act."
