"""The notification pipeline, assembled in one readable place:

    intake:   lifecycle -> plan -> suppress (silence, inhibition) -> record (outbox, unique key)
    timers:   叫应 steps due by the clock -> plan -> record
    dispatch: group -> dedup (already in the outbox) -> rate-limit -> send -> record

Everything is recorded before anything is sent: the outbox row with its idempotency key is the
promise, the send only fulfils it. The decisions themselves are pure functions in
:mod:`alerts.plan`, :mod:`alerts.noise`, :mod:`alerts.escalation` and :mod:`alerts.grouping`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from alerts.episodes import apply_event
from alerts.escalation import due_steps
from alerts.noise import SilenceRule, group_wait_until, inhibited, silenced_by
from alerts.plan import Heard, Notice, notice_key, plan_event, plan_steps
from alerts.store import Episode, Fault, LevelChange, Notification, Silence, Store
from config.models import Config, level_rank
from formats.warning import WarningEvent

__all__ = ["Intake", "latest_event"]

log = logging.getLogger("hazwatch.alerts")
ACTIVE = ("active", "acknowledged")


@dataclass(frozen=True)
class Recorded:
    new: int
    suppressed: int


class Intake:
    """Turns warning events and clock ticks into outbox rows, in one transaction each."""

    def __init__(self, store: Store, config: Config, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    # -- warning events -----------------------------------------------------------------------
    def event(self, event: WarningEvent) -> Recorded | None:
        """Record one warning event. None when it was a duplicate (changes nothing)."""
        now = self.clock()
        with self.store.session.begin() as s:
            episode = apply_event(s, event, self.config, now)
            if episode is None:
                return None
            heard = self._heard(s, event.episode) if event.kind == "cleared" else []
            notices = plan_event(self.config, event, heard=heard, now=now)
            return self._record(s, notices, now)

    def _heard(self, s: Session, episode: str) -> list[Heard]:
        rows = s.execute(
            select(Notification.channel, Notification.recipient, Notification.name, Notification.role,
                   Notification.language)
            .where(Notification.episode == episode, Notification.status.in_(("sent", "sending", "unknown", "pending")),
                   Notification.kind.in_(("raised", "escalated", "deescalated", "escalation", "reminder",
                                          "cap-alert")))
            .distinct()
        ).all()
        seen: dict[tuple[str, str], Heard] = {}
        for channel, address, name, role, language in rows:
            seen.setdefault((channel, address), Heard(channel, address, name, role, language))
        return list(seen.values())

    # -- clock ----------------------------------------------------------------------------------
    def tick(self) -> int:
        """Plan every 叫应 step that is due by now. Idempotent: keys make repeats no-ops."""
        now = self.clock()
        esc = self.config.settings.notify.escalation
        new = 0
        with self.store.session.begin() as s:
            episodes = s.scalars(select(Episode).where(
                Episode.state == "active", Episode.escalation_since.is_not(None) | Episode.red_since.is_not(None)
            )).all()
            for ep in episodes:
                steps = due_steps(level=ep.level, escalation_since=ep.escalation_since, red_since=ep.red_since,
                                  acknowledged=ep.state == "acknowledged", closed_or_cleared=ep.state in ("cleared", "closed"),
                                  cfg=esc, now=now)
                if not steps:
                    continue
                event = latest_event(s, ep)
                new += self._record(s, plan_steps(self.config, event, steps, now=now), now).new
            new += self._cancel_false_alarms(s, now)
        return new

    def _cancel_false_alarms(self, s: Session, now: dt.datetime) -> int:
        """A broadcast of an episode marked as a false alarm is withdrawn with a CAP Cancel."""
        rows = s.execute(select(Notification).join(Episode, Episode.id == Notification.episode).where(
            Episode.false_alarm.is_(True), Notification.channel == "cap", Notification.kind == "cap-alert",
            Notification.status == "sent")).scalars().all()
        notices = []
        for alert in rows:
            key = notice_key(alert.episode, "cap-cancel", "cap", alert.recipient)
            if s.scalar(select(Notification.id).where(Notification.key == key)) is not None:
                continue
            event = alert.warning
            notices.append(Notice(key, "cap", alert.episode, alert.site, "cap-cancel", event.level, alert.recipient,
                                  alert.name, "zone", "zh-CN", "false alarm", event, key, now))
        return self._record(s, notices, now).new if notices else 0

    # -- suppression and recording --------------------------------------------------------------
    def _record(self, s: Session, notices: Sequence[Notice], now: dt.datetime) -> Recorded:
        if not notices:
            return Recorded(0, 0)
        silences = [SilenceRule(x.id, x.matcher, x.starts_at, x.ends_at, x.ended_at)
                    for x in s.scalars(select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now))]
        site = notices[0].site
        active = dict(s.execute(select(Episode.id, Episode.level).where(  # the site's open episodes
            Episode.site == site, Episode.state.in_(ACTIVE))).all())
        faults = {f for (f,) in s.execute(select(Fault.subject).where(Fault.site == site))}
        rows = []
        suppressed = 0
        for n in notices:
            ev = n.event
            silence = silenced_by(silences, site=ev.site, subject=ev.subject, rule=ev.rule, level=n.level, now=now)
            # an all-clear is silenced exactly when its warnings were: it goes to who heard them
            elsewhere = max((lv for e, lv in active.items() if e != ev.episode), key=level_rank, default="normal")
            why = inhibited(level=ev.level, kind=ev.kind, site_level=elsewhere,
                            subject_in_fault=ev.subject in faults and ev.rule != "equipment_fault",
                            rules=self.config.settings.notify.inhibit) if n.kind in (
                "raised", "escalated", "deescalated", "cleared") else None
            status, reason = "pending", None
            if silence is not None:
                status, reason = "suppressed", f"silenced by silence {silence}"
            elif why:
                status, reason = "suppressed", f"inhibited: {why}"
            suppressed += status == "suppressed"
            rows.append({
                "key": n.key, "channel": n.channel, "episode": n.episode, "site": n.site, "kind": n.kind,
                "level": n.level, "recipient": n.recipient, "name": n.name, "role": n.role,
                "language": n.language, "reason": n.reason, "event": ev.to_json().decode(),
                "group_key": n.group_key, "status": status, "suppressed_reason": reason, "silence_id": silence,
                "attempts": 0, "created_at": now, "not_before": self._not_before(n, now),
            })
        insert = pg_insert if self.store.engine.dialect.name == "postgresql" else sqlite_insert
        result = s.execute(insert(Notification).values(rows).on_conflict_do_nothing(index_elements=["key"]))
        return Recorded(result.rowcount or 0, suppressed)


    def _not_before(self, n: Notice, now: dt.datetime) -> dt.datetime:
        """Grouped notices wait ``group_wait`` (red never waits); quiet hours may defer further."""
        wait = group_wait_until(level=n.level if n.kind != "cleared" else "normal", created_at=now,
                                group_wait_s=self.config.settings.notify.group_wait_s) \
            if n.group_key != n.key else now
        return max(n.not_before, wait, now)


def latest_event(s: Session, ep: Episode) -> WarningEvent:
    """The episode's newest level change as a warning event (for rendering step messages)."""
    lc = s.scalars(select(LevelChange).where(LevelChange.episode_id == ep.id)
                   .order_by(LevelChange.ts.desc(), LevelChange.id.desc()).limit(1)).first()
    site_sensor = ep.subject
    # the newest event the pipeline planned from carries the rule's detail (a rain window...)
    planned = s.scalars(select(Notification).where(
        Notification.episode == ep.id, Notification.kind.in_(("raised", "escalated", "deescalated")))
        .order_by(Notification.id.desc()).limit(1)).first()
    detail = {**(planned.warning.detail if planned else {}),
              "peak": ep.peak, "raised_ts": ep.raised_ts}
    return WarningEvent(
        episode=ep.id, site=ep.site, subject=site_sensor, rule=ep.rule,
        kind=lc.kind if lc else "raised", level=ep.level, previous=lc.previous if lc else "normal",
        ts=lc.ts if lc else ep.raised_ts, emitted_at=0, value=lc.value if lc else (ep.last_value or 0.0),
        threshold=lc.threshold if lc else None, unit=ep.unit,
        detail=detail,
    )


def sent_in_window(s: Session, recipient: str, since: dt.datetime, channel: str = "sms") -> int:
    """SMS messages (provider calls, not rows: a grouped message counts once) sent to a number on
    one channel (a provider's cap is its own: Twilio is ``sms``)."""
    return s.scalar(select(func.count(func.distinct(Notification.provider_id))).where(
        Notification.recipient == recipient, Notification.channel == channel, Notification.status == "sent",
        Notification.sent_at >= since)) or 0
