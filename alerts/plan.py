"""Who is told what: warning events and escalation steps -> notices. Pure.

A *notice* is one intended notification of one recipient on one channel. Its idempotency key
depends only on what it is about, never on when it was planned:

- routed warning:   (episode, level, channel, recipient) -- nobody hears the same level of the
  same episode twice on one channel, whatever Kafka redelivers or however often it flaps;
- all-clear:        (episode, "normal", channel, recipient);
- CAP broadcast:    (episode, "cap-alert" | "cap-allclear", zone);
- 叫应 escalation:  (episode, "escalation:<tier>", recipient); red reminder k: (episode, "reminder:k", ...).

Everything that decides *whether* a notice goes out (silences, inhibition, quiet hours, grouping,
rate limits) is applied by :mod:`alerts.pipeline` with the decisions of :mod:`alerts.noise`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from alerts.audience import Target, members, quiet_until, route
from alerts.escalation import Step
from config.models import Config
from formats.warning import WarningEvent

__all__ = ["Heard", "Notice", "notice_key", "plan_event", "plan_steps"]


def notice_key(episode: str, what: str, channel: str, address: str) -> str:
    return hashlib.sha256(f"{episode}|{what}|{channel}|{address}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Heard:
    """Someone who was notified about an episode (they get its all-clear)."""

    channel: str
    address: str
    name: str
    role: str
    language: str


@dataclass(frozen=True)
class Notice:
    key: str
    channel: str  # "sms" | "cap"
    episode: str
    site: str
    kind: str  # raised | escalated | deescalated | cleared | escalation | reminder | cap-alert | cap-allclear
    level: str
    recipient: str  # E.164, or the zone id for CAP
    name: str
    role: str
    language: str
    reason: str  # routing rule, "all-clear" or the escalation step
    event: WarningEvent
    group_key: str
    not_before: dt.datetime
    audience: str = ""
    step: Step | None = field(default=None, compare=False)


def _notice(event: WarningEvent, target: Target | Heard, *, kind: str, what: str, reason: str,
            now: dt.datetime, audience: str = "", grouped: bool = True, step: Step | None = None) -> Notice:
    key = notice_key(event.episode, what, target.channel, target.address)
    group_key = f"{event.site}|{target.channel}|{target.address}" if grouped else key
    return Notice(key, target.channel, event.episode, event.site, kind, event.level, target.address,
                  target.name, target.role, target.language, reason, event, group_key, now, audience, step)


def plan_event(config: Config, event: WarningEvent, *, heard: Iterable[Heard], now: dt.datetime) -> list[Notice]:
    """Notices for one warning event. ``heard``: who was notified of this episode so far."""
    if event.kind == "cleared":
        out = []
        for h in heard:
            if h.channel == "cap":
                out.append(_notice(event, h, kind="cap-allclear", what="cap-allclear", reason="all-clear",
                                   now=now, grouped=False))
            else:
                out.append(_notice(event, h, kind="cleared", what="normal", reason="all-clear", now=now))
        return out
    out = []
    for target in route(config, event, now):
        if target.channel == "cap":
            if event.level != "red":
                continue  # CAP goes to loudspeakers: red only (an Alert per episode and zone)
            n = _notice(event, target, kind="cap-alert", what="cap-alert", reason=target.rule, now=now,
                        audience=target.audience, grouped=False)
        else:
            n = _notice(event, target, kind=event.kind, what=event.level, reason=target.rule, now=now,
                        audience=target.audience)
        until = quiet_until(config, target, event.level, now)
        out.append(replace(n, not_before=until) if until else n)
    return out


def plan_steps(config: Config, event: WarningEvent, steps: Iterable[Step], *, now: dt.datetime) -> list[Notice]:
    """Notices for due 叫应 steps of one episode; ``event`` is its latest level change."""
    site = config.site(event.site)
    out: list[Notice] = []
    for step in steps:
        what = f"escalation:{step.tier}" if step.kind == "escalation" else f"reminder:{step.index}"
        for channel in config.settings.notify.escalation.channels:  # people, never a broadcast
            for audience in step.audiences:
                for target in members(config, site, audience, channel=channel):
                    out.append(_notice(event, target, kind=step.kind, what=what, reason=what, now=now,
                                       audience=audience, grouped=False, step=step))
    return out
