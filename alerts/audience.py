"""Who hears what: audiences resolved to targets, routing rules applied to a warning event, quiet
hours. Pure: plain functions over the validated configuration, ``now`` passed in, no I/O.

Audiences (``config.notify``, issue "Who hears what"):

- ``operators``: every monitoring-centre operator, for every site;
- ``officers``: the safety officers of the site's enterprise;
- ``regulators:county|city|province``: regulators of that tier whose region code covers the site's
  (county: all 6 digits, city: the first 4, province: the first 2; :func:`config.notify.region_prefix`);
- ``residents``: the subscribers of every zone the site affects (its zone, its extra zones and the
  zones met by its hazard radius, :meth:`config.models.Config.affected_zones`).

Channels (``alerts.channels.registry``), by kind: an ``sms`` channel (``sms`` = ``sms-twilio``,
``sms-aliyun``, ``sms-tencent``) reaches a person at an E.164 number; ``cap`` is a broadcast to an
area, so only the ``residents`` audience has CAP targets: one per affected zone, addressed by zone
id. A rule that names ``cap`` for another audience adds no CAP target (a broadcast has no
per-person address). A ``group`` channel (``wecom-robot``, ``dingtalk-robot``) reaches a chat
group: one target per configured robot that lists the audience, addressed by the robot's id.
Twilio's targets say ``sms`` whichever of its names a rule uses, as before the registry (the
outbox keys, the rate limit and the all-clear depend on it).

Routing rules are additive (:func:`route`): a target hears an event when any rule routes it there,
once per (channel, address), credited to the first rule that reached it.

Time windows are local times of ``settings.timezone``, half-open ``[from, to)``, and may wrap
midnight (``["22:00", "07:00"]``). The configuration rejects equal bounds; :func:`in_window`
still reads them, in the direction that delivers: a routing window ``[x, x)`` matches the whole day,
a quiet period ``[x, x)`` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from alerts.channels.registry import CHANNEL_NAMES, canonical, spec
from config.models import Config, Site, level_rank
from config.notify import AUDIENCES, RoutingMatch, region_prefix
from formats.warning import WarningEvent

__all__ = [
    "CHANNELS",
    "Target",
    "in_window",
    "matches",
    "members",
    "outbox_channel",
    "quiet_until",
    "route",
]

CHANNELS: tuple[str, ...] = CHANNEL_NAMES
#: A group target answers as the role its audience stands for (the texts differ by role).
_GROUP_ROLE = {"operators": "operator", "officers": "officer", "regulators:county": "regulator",
               "regulators:city": "regulator", "regulators:province": "regulator", "residents": "resident"}


def outbox_channel(channel: str) -> str:
    """The name a channel's notices carry in the outbox: ``sms`` for Twilio (both its names),
    the registry name otherwise."""
    name = canonical(channel)
    return "sms" if name == "sms-twilio" else name


@dataclass(frozen=True)
class Target:
    """One addressee on one channel, and why it was chosen."""

    channel: str
    """The outbox channel: ``"sms"`` (Twilio), ``"cap"`` or another registry name."""
    address: str
    """E.164 number for SMS; zone id for CAP; robot id for a group channel."""
    name: str
    role: str
    """``operator | officer | regulator | resident | zone``."""
    language: str
    """``zh-CN`` or ``en``; CAP targets carry both languages and say ``zh-CN`` (the default)."""
    audience: str
    """The audience it was resolved from, e.g. ``"regulators:county"``."""
    rule: str = ""
    """The routing rule name, or the escalation reason (e.g. ``"escalation:county"``)."""


def members(
    config: Config, site: Site, audience: str, *, channel: str = "sms", rule: str = ""
) -> list[Target]:
    """The targets ``audience`` stands for at ``site`` on ``channel``, in configuration order,
    each address once. Raises :class:`ValueError` for an unknown audience or channel."""
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r} (one of {list(AUDIENCES)})")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r} (one of {list(CHANNELS)})")
    kind, channel = spec(channel).kind, outbox_channel(channel)
    if kind == "broadcast":
        if audience != "residents":
            return []
        return [
            Target(channel, z.id, z.name, "zone", "zh-CN", audience, rule)
            for z in (config.zone(zid) for zid in config.affected_zones(site.id))
        ]
    if kind == "group":
        section = getattr(config.settings.notify.channels, channel.replace("-", "_"), None)
        robots = section.robots if section is not None else []
        return [Target(channel, r.id, r.name, _GROUP_ROLE[audience], "zh-CN", audience, rule)
                for r in robots if audience in r.audiences]

    out: list[Target] = []
    if audience == "residents":
        for zid in config.affected_zones(site.id):
            out += [
                Target(channel, s.phone, s.name, "resident", s.language, audience, rule)
                for s in config.zone(zid).subscribers
            ]
    else:
        tier = audience.partition(":")[2]
        for r in config.recipients:
            if audience == "operators":
                hit = r.role == "operator"
            elif audience == "officers":
                hit = r.role == "officer" and r.enterprise == site.enterprise
            else:
                hit = (
                    r.role == "regulator"
                    and r.tier == tier
                    and r.region is not None
                    and site.region.startswith(region_prefix(r.region, tier))
                )
            if hit:
                out.append(Target(channel, r.phone, r.name, r.role, r.language, audience, rule))
    return _unique(out)


def route(config: Config, event: WarningEvent, now: datetime) -> list[Target]:
    """Every target the routing rules send ``event`` to, de-duplicated by (channel, address).

    A rule applies when its match holds for the event's level, the site's kind, the event's rule
    and the local time of ``now`` (aware). Raised, escalated and de-escalated events route by
    their new level. A ``cleared`` event routes to nobody here: the all-clear goes to whoever heard
    the episode, which only the audit store knows.
    """
    _aware(now, "now")
    if event.kind == "cleared" or level_rank(event.level) == 0:
        return []
    site = config.site(event.site)
    local = now.astimezone(ZoneInfo(config.settings.timezone)).time()
    out: list[Target] = []
    for rule in config.settings.routing.rules:
        if not matches(
            rule.match, level=event.level, site_kind=site.kind, rule=event.rule, local=local
        ):
            continue
        for audience in rule.audiences:
            for channel in rule.channels:
                out += members(config, site, audience, channel=channel, rule=rule.name)
    return _unique(out)


def matches(match: RoutingMatch, *, level: str, site_kind: str, rule: str, local: time) -> bool:
    """Whether every field ``match`` gives holds; an omitted field matches anything."""
    return (
        (match.levels is None or level in match.levels)
        and (match.site_kinds is None or site_kind in match.site_kinds)
        and (match.rules is None or rule in match.rules)
        and (match.hours is None or in_window(local, *match.hours, equal_is_all_day=True))
    )


def in_window(local: time, start: str, end: str, *, equal_is_all_day: bool) -> bool:
    """Whether ``local`` lies in ``[start, end)`` (``"HH:MM"``), wrapping midnight when
    ``end <= start``. Equal bounds: the whole day, or nothing."""
    a, b, t = _hhmm(start), _hhmm(end), local.replace(tzinfo=None)
    if a == b:
        return equal_is_all_day
    return a <= t < b if a < b else (t >= a or t < b)


def quiet_until(config: Config, target: Target, level: str, now: datetime) -> datetime | None:
    """When a message to ``target`` may go, if ``now`` is inside the quiet hours and the target's
    audience is held by them: the end of the quiet period, an aware datetime in the configured
    timezone. ``None`` means send now: no quiet hours, an audience they do not list, a time outside
    them, or a red warning (issue 3: quiet hours never apply to red).

    For an all-clear pass the episode's peak level, so the end of a red is not held back either.
    """
    _aware(now, "now")
    quiet = config.settings.routing.quiet_hours
    if quiet is None or level not in quiet.levels or target.audience not in quiet.audiences:
        return None  # red is never in quiet.levels
    tz = ZoneInfo(config.settings.timezone)
    local = now.astimezone(tz)
    if not in_window(local.time(), quiet.start, quiet.end, equal_is_all_day=False):
        return None
    end = _hhmm(quiet.end)
    day = local.date()
    # Inside a wrapping period before midnight the period ends tomorrow.
    if _hhmm(quiet.start) > end and local.time().replace(tzinfo=None) >= _hhmm(quiet.start):
        day += timedelta(days=1)
    return datetime.combine(day, end, tzinfo=tz)


def _hhmm(text: str) -> time:
    hh, mm = text.split(":")
    return time(int(hh), int(mm))


def _unique(targets: list[Target]) -> list[Target]:
    seen: set[tuple[str, str]] = set()
    out = []
    for t in targets:
        if (t.channel, t.address) not in seen:
            seen.add((t.channel, t.address))
            out.append(t)
    return out


def _aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got naive {value.isoformat()}")
