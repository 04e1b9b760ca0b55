"""Who is told what about one warning event: routing to notification intents. Pure.

- SMS: the roles ``routing`` names for the event's level (for an all-clear: for the episode's
  peak level, so everybody who heard the warning hears it end). Operators hear every site,
  officers the sites of their enterprise, residents the sites that affect their zone.
- Broadcast (CAP over MQTT): an Alert to the site's zone when the level reaches red; the
  all-clear (an Update with responseType AllClear) when an episode that reached red clears.
  One Alert per episode and zone: a second rise to red in the same episode is told by SMS.

Every intent has an idempotency key derived only from the event and the recipient, so the same
event delivered twice (Kafka redelivery, a rules worker restarted mid-batch) plans the same keys
and the outbox sends it once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from config.models import Config, Recipient, Site
from rules.events import WarningEvent

__all__ = ["Intent", "plan", "recipients_for"]


@dataclass(frozen=True)
class Intent:
    key: str
    channel: str  # "sms" | "cap"
    episode: str
    site: str
    kind: str
    level: str
    recipient: str  # E.164 number, or zone id for "cap"
    role: str  # operator | officer | resident | zone
    language: str
    event: WarningEvent


def _key(event: WarningEvent, channel: str, recipient: str, what: str, *, per_change: bool = True) -> str:
    """Same event and recipient -> same key. ``per_change=False``: once per episode (CAP)."""
    change = f"{event.level}|{event.ts}" if per_change else ""
    raw = f"{event.episode}|{what}|{change}|{channel}|{recipient}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def recipients_for(config: Config, site: Site, roles: list[str]) -> list[Recipient]:
    out = []
    for r in config.recipients:
        if r.role not in roles:
            continue
        if r.role == "officer" and r.enterprise != site.enterprise:
            continue
        if r.role == "resident" and r.zone != site.zone:
            continue
        out.append(r)
    return out


def plan(config: Config, event: WarningEvent) -> list[Intent]:
    site = config.site(event.site)
    routing = config.settings.routing
    level_for_routing = event.detail.get("peak", event.previous) if event.kind == "cleared" else event.level
    intents = [
        Intent(_key(event, "sms", r.phone, event.kind), "sms", event.episode, event.site, event.kind,
               event.level, r.phone, r.role, r.language, event)
        for r in recipients_for(config, site, routing.roles_for(level_for_routing))
    ]
    reached_red = event.level == "red" and event.kind in ("raised", "escalated")
    all_clear = event.kind == "cleared" and event.detail.get("peak") == "red"
    if reached_red or all_clear:
        what = "cap-alert" if reached_red else "cap-allclear"
        intents.append(Intent(_key(event, "cap", site.zone, what, per_change=False), "cap", event.episode, event.site,
                              event.kind, event.level, site.zone, "zone", "zh-CN", event))
    return intents
