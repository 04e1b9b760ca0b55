"""Public warning coverage (预警信息公众覆盖率) of red warnings, per zone and per red episode.

For every episode whose peak is red, raised in ``[since, until)``, and every zone its site
affects (its own zone, ``extra_zones`` and those within ``hazard_radius_km``, as the routing
resolves them, plus any zone its CAP rows name):

- **SMS coverage**: of the zone's subscribers (``zones.yaml``, today's list), the share whose red
  warning SMS of that episode was *delivered*: an SMS outbox row of the episode at level red to
  that number, on any SMS channel, whose provider reported the handset receipt
  (``delivery_status`` delivered or read, from the status callbacks of ``alerts/deliveries.py``).
  Each subscriber has one outcome, the best of their rows: ``delivered``, ``awaiting_receipt``
  (sent, no receipt yet: unknown), ``pending`` (not sent yet), ``failed``, ``suppressed``, or
  ``not_sent`` (no row at all: no routing rule reached them). Everyone but ``delivered`` is
  listed for follow-up by phone.
- **Loudspeakers**: whether the zone's gateways were sent the CAP Alert: ``sent`` (the broker
  took it), ``covered`` (another red episode of the same site had its Alert sounding there,
  ``alerts/notify/broadcast.py``), ``pending``, ``failed``, ``suppressed`` or ``none`` (no CAP row).
  ``sounded`` is true for sent and covered.
- **Target**: ``share >= target`` (``indicators.coverage.target``, 0.9 by default). A zone
  without subscribers has no share and meets nothing.

:func:`zone_coverage` is the pure rule over plain rows; :func:`coverage` reads the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from alerts.report import is_sms_channel, sms_outcome
from alerts.store import Episode, Notification, Store
from config.models import Config
from config.notify import Subscriber, Zone

__all__ = ["CAP_STATES", "OUTCOMES", "CapRow", "SmsRow", "cap_state", "coverage", "follow_up", "is_sms_channel",
           "zone_coverage"]

#: A subscriber's outcome, best first; all but ``delivered`` are followed up by phone.
OUTCOMES: tuple[str, ...] = ("delivered", "awaiting_receipt", "pending", "failed", "suppressed", "not_sent")
#: The loudspeakers' state for one zone and episode.
CAP_STATES: tuple[str, ...] = ("sent", "covered", "pending", "failed", "suppressed", "none")
_WARNING_KINDS = ("raised", "escalated", "deescalated")
_COVERED = "covered by CAP "


@dataclass(frozen=True)
class SmsRow:
    """What coverage reads of one SMS outbox row."""

    recipient: str
    channel: str
    status: str
    delivery_status: str | None = None
    reason: str | None = None
    """The provider's error or the suppression reason, shown to whoever follows up."""


@dataclass(frozen=True)
class CapRow:
    """What coverage reads of one ``cap-alert`` outbox row."""

    status: str
    provider_id: str | None = None
    suppressed_reason: str | None = None


def cap_state(rows: Sequence[CapRow]) -> tuple[str, str | None]:
    """The loudspeakers' state of one zone and episode from its ``cap-alert`` rows, and the CAP
    identifier that sounded (its own, or the covering Alert's)."""
    def one(r: CapRow) -> tuple[str, str | None]:
        if r.status == "sent":
            return "sent", r.provider_id
        if r.status == "suppressed" and (r.suppressed_reason or "").startswith(_COVERED):
            return "covered", (r.suppressed_reason or "")[len(_COVERED):] or None
        if r.status == "failed":
            return "failed", None
        if r.status == "suppressed":
            return "suppressed", None
        return "pending", None  # pending, sending, unknown
    states = [one(r) for r in rows] or [("none", None)]
    return min(states, key=lambda s: CAP_STATES.index(s[0]))


def zone_coverage(subscribers: Sequence[Subscriber], sms: Iterable[SmsRow], cap: Sequence[CapRow],
                  target: float) -> dict[str, Any]:
    """Coverage of one zone for one red episode. ``sms``: the episode's red warning SMS rows (any
    recipient; those of the zone's subscribers count); ``cap``: its ``cap-alert`` rows for the zone."""
    best: dict[str, tuple[int, SmsRow]] = {}
    for row in sms:
        rank = OUTCOMES.index(sms_outcome(row.status, row.delivery_status))
        if row.recipient not in best or rank < best[row.recipient][0]:
            best[row.recipient] = (rank, row)
    people, delivered = [], 0
    for sub in subscribers:
        found = best.get(sub.phone)
        outcome = OUTCOMES[found[0]] if found else "not_sent"
        if outcome == "delivered":
            delivered += 1
            continue
        people.append({"name": sub.name, "phone": sub.phone, "language": sub.language, "outcome": outcome,
                       "channel": found[1].channel if found else None,
                       "reason": found[1].reason if found else None})
    total = len(subscribers)
    share = round(delivered / total, 4) if total else None
    state, identifier = cap_state(cap)
    return {"subscribers": total, "delivered": delivered, "share": share,
            "met": share is not None and share >= target,
            "loudspeakers": {"state": state, "identifier": identifier, "sounded": state in ("sent", "covered")},
            "not_reached": people}


def _zones_of(config: Config, site: str, cap_zones: Iterable[str]) -> list[Zone]:
    try:
        ids = list(config.affected_zones(site))
    except KeyError:  # a site gone from the configuration: the zones its broadcasts named
        ids = []
    out = []
    for zid in dict.fromkeys([*ids, *cap_zones]):
        try:
            out.append(config.zone(zid))
        except KeyError:
            continue
    return out


def coverage(store: Store, config: Config, since: dt.datetime, until: dt.datetime, *,
             sites: Collection[str] | None = None, target: float | None = None,
             language: str = "zh-CN") -> dict[str, Any]:
    """Coverage of the red episodes raised in ``[since, until)`` (of ``sites`` only, when given),
    per episode and zone, and summed per zone; plain data, JSON-ready with orjson."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("coverage window bounds need a timezone")
    if until <= since:
        raise ValueError(f"until ({until.isoformat()}) must be after since ({since.isoformat()})")
    goal = config.settings.indicators.coverage.target if target is None else target
    scope = (Episode.peak == "red") & (Episode.raised_at >= since) & (Episode.raised_at < until)
    if sites is not None:
        scope &= Episode.site.in_(list(sites))
    with store.session() as s:
        episodes = list(s.scalars(select(Episode).where(scope).order_by(Episode.raised_at, Episode.id)))
        notes = s.execute(select(
            Notification.episode, Notification.channel, Notification.kind, Notification.level,
            Notification.recipient, Notification.status, Notification.delivery_status,
            Notification.provider_id, Notification.suppressed_reason, Notification.error,
        ).join(Episode, Episode.id == Notification.episode).where(scope)).all()
    sms: dict[str, list[SmsRow]] = {}
    cap: dict[tuple[str, str], list[CapRow]] = {}
    cap_zones: dict[str, list[str]] = {}
    for n in notes:
        if n.channel == "cap" and n.kind == "cap-alert":
            cap.setdefault((n.episode, n.recipient), []).append(
                CapRow(n.status, n.provider_id, n.suppressed_reason))
            cap_zones.setdefault(n.episode, []).append(n.recipient)
        elif is_sms_channel(n.channel) and n.level == "red" and n.kind in _WARNING_KINDS:
            sms.setdefault(n.episode, []).append(SmsRow(
                n.recipient, n.channel, n.status, n.delivery_status, n.suppressed_reason or n.error))
    out, zones = [], {}
    for e in episodes:
        site_name = e.site
        try:
            site_cfg = config.site(e.site)
            site_name = site_cfg.name_en if language == "en" and site_cfg.name_en else site_cfg.name
        except KeyError:
            pass
        rows = []
        for z in _zones_of(config, e.site, cap_zones.get(e.id, [])):
            one = zone_coverage(z.subscribers, sms.get(e.id, []), cap.get((e.id, z.id), []), goal)
            name = z.name_en if language == "en" and z.name_en else z.name
            rows.append({"zone": z.id, "zone_name": name, **one})
            tally = zones.setdefault(z.id, {"zone": z.id, "zone_name": name, "episodes": 0, "subscribers": 0,
                                             "delivered": 0, "met": 0, "sounded": 0})
            tally["episodes"] += 1
            tally["subscribers"] += one["subscribers"]
            tally["delivered"] += one["delivered"]
            tally["met"] += one["met"]
            tally["sounded"] += one["loudspeakers"]["sounded"]
        out.append({"episode": e.id, "site": e.site, "site_name": site_name, "enterprise": e.enterprise,
                    "subject": e.subject, "rule": e.rule, "state": e.state, "false_alarm": e.false_alarm,
                    "raised_at": e.raised_at, "zones": rows})
    for tally in zones.values():
        tally["share"] = round(tally["delivered"] / tally["subscribers"], 4) if tally["subscribers"] else None
    return {"since": since, "until": until, "target": goal, "episodes": out, "zones": list(zones.values())}


def follow_up(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Everyone not reached, one line per (episode, zone, person), for the phone list."""
    return [{"episode": e["episode"], "site": e["site"], "site_name": e["site_name"], "zone": z["zone"],
             "zone_name": z["zone_name"], **p}
            for e in data["episodes"] for z in e["zones"] for p in z["not_reached"]]
