"""The warning lifecycle: one episode per warning of one subject under one rule.

States and what moves them::

    (event raised) -> active --acknowledge--> acknowledged
                        |                         |
                        '--(event cleared)--------+--> cleared --close--> closed (final)
    active / acknowledged --close with a reason--> closed

    dispose (处置反馈) and mark as false alarm: any state but closed; the state does not change.
    acknowledge a cleared episode: recorded (who answered, and when), the state stays cleared.

The rules are plain functions over plain data (:func:`transition`, :func:`opening`,
:func:`progression`); :func:`apply_event` and :class:`EpisodeService` are the store-backed shell.
Every operator action writes an :class:`~alerts.store.Action` row.

Errors::

    EpisodeError
     ├── UnknownEpisode       no episode with that id (or id prefix)
     ├── InvalidTransition    the action is not allowed in the episode's current state
     └── InvalidArgument      a bad actor, category, text, level (also a ValueError)
"""

from __future__ import annotations

import builtins
import datetime as dt
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from alerts.store import Action, Episode, LevelChange, Notification, Store, utcnow
from config.models import LEVELS, Config, level_rank
from formats.warning import WarningEvent

__all__ = [
    "DISPOSE_CATEGORIES",
    "OPERATOR_ACTIONS",
    "STATES",
    "EpisodeError",
    "EpisodeLike",
    "EpisodeService",
    "InvalidArgument",
    "InvalidTransition",
    "UnknownEpisode",
    "apply_event",
    "as_dict",
    "opening",
    "progression",
    "transition",
]

STATES: tuple[str, ...] = ("active", "acknowledged", "cleared", "closed")
OPERATOR_ACTIONS: tuple[str, ...] = ("acknowledge", "dispose", "close", "false_alarm")
#: Disposition categories (处置反馈) and their zh-CN labels.
DISPOSE_CATEGORIES: dict[str, str] = {
    "on_site_check": "现场核查",
    "repair": "抢修处置",
    "evacuation": "人员转移",
    "false_alarm": "误报",
    "other": "其他",
}
_VERBS = {"acknowledge": "acknowledge", "dispose": "dispose", "close": "close",
          "false_alarm": "mark as false alarm"}


class EpisodeError(Exception):
    """Base of the lifecycle errors."""


class UnknownEpisode(EpisodeError):
    def __init__(self, episode: str) -> None:
        super().__init__(f"no episode {episode!r}")
        self.episode = episode


class InvalidTransition(EpisodeError):
    """The action is not allowed now; the message says the current state and why."""

    def __init__(self, episode: str, state: str, action: str, why: str) -> None:
        verb = _VERBS.get(action, action)
        super().__init__(f"cannot {verb} episode {episode}: it is {state}; {why}")
        self.episode, self.state, self.action, self.why = episode, state, action, why


class InvalidArgument(EpisodeError, ValueError):
    pass


class EpisodeLike(Protocol):
    """What the transition rules read of an episode (an :class:`~alerts.store.Episode` is one)."""

    id: str
    state: str
    level: str
    peak: str
    unit: str
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None
    escalation_since: dt.datetime | None
    red_since: dt.datetime | None
    cleared_at: dt.datetime | None
    false_alarm: bool


# --- pure rules -----------------------------------------------------------------------------


def transition(ep: EpisodeLike, action: str, *, reason: str | None = None) -> str:
    """The state after operator ``action`` on ``ep``; :class:`InvalidTransition` if forbidden."""
    def no(why: str) -> InvalidTransition:
        return InvalidTransition(ep.id, ep.state, action, why)

    if action not in OPERATOR_ACTIONS:
        raise InvalidArgument(f"unknown action {action!r} (one of {', '.join(OPERATOR_ACTIONS)})")
    if ep.state not in STATES:
        raise no(f"{ep.state!r} is not a lifecycle state")
    if ep.state == "closed":
        raise no("a closed episode is final")
    if action == "acknowledge":
        if ep.acknowledged_by is not None or ep.state == "acknowledged":
            when = f" at {ep.acknowledged_at.isoformat()}" if ep.acknowledged_at else ""
            raise no(f"already acknowledged by {ep.acknowledged_by}{when}")
        return "acknowledged" if ep.state == "active" else ep.state
    if action == "close":
        if ep.state != "cleared" and not (reason and reason.strip()):
            raise no("the warning has not cleared; closing it early needs a reason")
        return "closed"
    if action == "false_alarm" and ep.false_alarm:
        raise no("already marked as a false alarm")
    return ep.state


def _top(*levels: str) -> str:
    return max(levels, key=level_rank)


def opening(event: WarningEvent, *, kind: str, enterprise: str, min_level: str,
            now: dt.datetime) -> dict[str, Any]:
    """Column values of the episode that ``event`` opens.

    Usually the event is ``raised``; any other kind means the raise was lost (before hazwatch ran,
    or dead-lettered), and the episode is opened from what the event tells: its state from the kind,
    its peak from the higher of ``level`` and ``previous`` (the episode was at ``previous`` before).
    """
    cleared = event.kind == "cleared" or event.level == "normal"
    escalating = not cleared and level_rank(event.level) >= level_rank(min_level)
    return {
        "id": event.episode, "site": event.site, "subject": event.subject, "rule": event.rule,
        "kind": kind, "enterprise": enterprise,
        "state": "cleared" if cleared else "active",
        "level": event.level, "peak": _top(event.level, event.previous),
        "unit": event.unit, "last_value": event.value,
        "raised_ts": event.ts, "raised_at": now,
        "escalation_since": now if escalating else None,
        "red_since": now if not cleared and event.level == "red" else None,
        "cleared_at": now if cleared else None,
        "false_alarm": False, "updated_at": now,
    }


def progression(ep: EpisodeLike, event: WarningEvent, *, min_level: str, now: dt.datetime,
                stale: bool = False) -> dict[str, Any]:
    """Changes that ``event`` makes to an existing episode (column -> new value).

    ``stale``: the episode already recorded a later event (out-of-order delivery); the stale event
    goes into the level history and may raise the peak, but does not move level or state.
    A closed episode keeps recording levels but stays closed and starts no timers.
    """
    changes: dict[str, Any] = {"peak": _top(ep.peak, event.level, event.previous),
                               "updated_at": now}
    if stale:
        return changes
    changes.update(level=event.level, last_value=event.value, unit=event.unit or ep.unit)
    state = ep.state
    if event.kind == "cleared" or event.level == "normal":
        if state in ("active", "acknowledged"):
            state = "cleared"
        if ep.cleared_at is None:
            changes["cleared_at"] = now
    else:
        if state == "cleared":  # up again under the same id: a live warning never sits in cleared
            state = "acknowledged" if ep.acknowledged_by else "active"
            changes["cleared_at"] = None
        if state != "closed":
            if ep.escalation_since is None and level_rank(event.level) >= level_rank(min_level):
                changes["escalation_since"] = now
            if ep.red_since is None and event.level == "red":
                changes["red_since"] = now
    if state != ep.state:
        changes["state"] = state
    return changes


# --- store-backed shell -----------------------------------------------------------------------


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise EpisodeError(f"the audit store supports SQLite and PostgreSQL, not {dialect}")


def apply_event(session: Session, event: WarningEvent, config: Config,
                now: dt.datetime) -> Episode | None:
    """Record ``event`` in its episode inside the caller's transaction; return the episode.

    Returns None for a duplicate (Kafka redelivery: the same episode, kind, level and ts is already
    recorded) and then changes nothing. Uses ``INSERT .. ON CONFLICT DO NOTHING`` rather than
    catching an IntegrityError, so that a duplicate never aborts the caller's PostgreSQL
    transaction and two workers racing on one event (during a rebalance) both stay correct.
    """
    for field in ("level", "previous"):
        if getattr(event, field) not in LEVELS:
            raise InvalidArgument(
                f"event {event.episode}: {field} {getattr(event, field)!r} is not a level")
    insert = _insert(session)
    min_level = config.settings.notify.escalation.min_level
    kind, enterprise = "unknown", ""  # a site gone from the configuration still gets its episode
    try:
        site = config.site(event.site)
        kind, enterprise = site.kind, site.enterprise
    except KeyError:
        pass
    fields = opening(event, kind=kind, enterprise=enterprise, min_level=min_level, now=now)
    created = session.execute(
        insert(Episode).values(**fields).on_conflict_do_nothing(index_elements=["id"])
        .returning(Episode.id)
    ).first() is not None
    ep = session.get(Episode, event.episode, with_for_update=not created, populate_existing=True)
    assert ep is not None
    latest = None if created else session.scalar(
        select(func.max(LevelChange.ts)).where(LevelChange.episode_id == event.episode))
    recorded = session.execute(
        insert(LevelChange).values(
            episode_id=event.episode, kind=event.kind, level=event.level, previous=event.previous,
            value=event.value, threshold=event.threshold, ts=event.ts, recorded_at=now,
        ).on_conflict_do_nothing(index_elements=["episode_id", "kind", "level", "ts"])
        .returning(LevelChange.id)
    ).first()
    if recorded is None:
        return None
    if not created:
        changes = progression(ep, event, min_level=min_level, now=now,
                              stale=latest is not None and event.ts < latest)
        for column, value in changes.items():
            setattr(ep, column, value)
        session.flush()
    return ep


def _text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InvalidArgument(f"{what} must not be empty")
    return value.strip()


def as_dict(obj: object, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The column values of a store row (an Episode, Action, Silence, ...) as a plain dict."""
    table = obj.__table__  # type: ignore[attr-defined]
    return {c.key: getattr(obj, c.key) for c in table.columns if c.key not in skip}


class EpisodeService:
    """Operator and officer actions on episodes, each in its own transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def resolve(self, episode_id: str) -> str:
        """The full id of ``episode_id``, which may be a unique prefix of at least 4 characters."""
        with self._store.session() as s:
            if s.get(Episode, episode_id) is not None:
                return episode_id
            if len(episode_id) < 4:
                raise UnknownEpisode(episode_id)
            prefixed = Episode.id.startswith(episode_id, autoescape=True)
            ids = s.scalars(select(Episode.id).where(prefixed).limit(2)).all()
        if not ids:
            raise UnknownEpisode(episode_id)
        if len(ids) > 1:
            raise InvalidArgument(f"episode id prefix {episode_id!r} is ambiguous; give more of it")
        return ids[0]

    def get(self, episode_id: str) -> Episode:
        with self._store.session() as s:
            ep = s.get(Episode, episode_id)
        if ep is None:
            raise UnknownEpisode(episode_id)
        return ep

    def acknowledge(self, episode_id: str, by: str, now: dt.datetime | None = None) -> Episode:
        """Record who answered (叫应) and when; active -> acknowledged, cleared stays cleared."""
        return self._act(episode_id, "acknowledge", by, now)

    def dispose(self, episode_id: str, by: str, category: str, text: str,
                now: dt.datetime | None = None) -> Episode:
        """Disposition feedback (处置反馈): a :data:`DISPOSE_CATEGORIES` key and free text."""
        if category not in DISPOSE_CATEGORIES:
            raise InvalidArgument(f"unknown disposal category {category!r} "
                                  f"(one of {', '.join(DISPOSE_CATEGORIES)})")
        return self._act(episode_id, "dispose", by, now, category=category,
                         text=_text(text, "disposal text"))

    def close(self, episode_id: str, by: str, reason: str | None = None,
              now: dt.datetime | None = None) -> Episode:
        """Close a cleared episode, or one not yet cleared when a reason is given. Final."""
        reason = reason.strip() if reason and reason.strip() else None
        return self._act(episode_id, "close", by, now, text=reason)

    def mark_false_alarm(self, episode_id: str, by: str, reason: str,
                         now: dt.datetime | None = None) -> Episode:
        return self._act(episode_id, "false_alarm", by, now, text=_text(reason, "reason"))

    def _act(self, episode_id: str, action: str, by: str, now: dt.datetime | None,
             category: str | None = None, text: str | None = None) -> Episode:
        actor = _text(by, "actor (--by)")
        at = now or utcnow()
        with self._store.session.begin() as s:
            ep = s.get(Episode, episode_id, with_for_update=True)
            if ep is None:
                raise UnknownEpisode(episode_id)
            state = transition(ep, action, reason=text)
            values: dict[str, Any] = {"state": state, "updated_at": at}
            if action == "acknowledge":
                values.update(acknowledged_by=actor, acknowledged_at=at)
            elif action == "close":
                values.update(closed_by=actor, closed_at=at, close_reason=text)
            elif action == "false_alarm":
                values.update(false_alarm=True)
            # Compare-and-set on what the rules looked at: SQLite takes no row locks, so two
            # operators acknowledging at once must not both succeed.
            done = s.execute(
                update(Episode).where(
                    Episode.id == ep.id, Episode.state == ep.state,
                    Episode.false_alarm == ep.false_alarm,
                    Episode.acknowledged_by.is_(None) if ep.acknowledged_by is None
                    else Episode.acknowledged_by == ep.acknowledged_by,
                ).values(**values).execution_options(synchronize_session=False)
            )
            if done.rowcount != 1:  # type: ignore[attr-defined]
                raise InvalidTransition(ep.id, ep.state, action, "it changed meanwhile; look again")
            s.add(Action(episode_id=ep.id, action=action, actor=actor, at=at, category=category,
                         text=text))
            s.flush()
            s.refresh(ep)
        return ep

    def list(self, state: str | None = None, site: str | None = None,
             since: dt.datetime | None = None, limit: int | None = None) -> builtins.list[Episode]:
        """Episodes, newest first, filtered by state, site and raised at or after ``since``."""
        if state is not None and state not in STATES:
            raise InvalidArgument(f"unknown state {state!r} (one of {', '.join(STATES)})")
        q = select(Episode).order_by(Episode.raised_at.desc(), Episode.id.desc())
        if state is not None:
            q = q.where(Episode.state == state)
        if site is not None:
            q = q.where(Episode.site == site)
        if since is not None:
            q = q.where(Episode.raised_at >= since)
        if limit is not None:
            q = q.limit(limit)
        with self._store.session() as s:
            return builtins.list(s.scalars(q).all())

    def show(self, episode_id: str) -> dict[str, Any]:
        """The episode with its level history, actions and notifications (oldest first).

        Values are plain Python (datetimes are timezone-aware UTC), ready for JSON with orjson.
        """
        with self._store.session() as s:
            ep = s.get(Episode, episode_id)
            if ep is None:
                raise UnknownEpisode(episode_id)
            levels = s.scalars(select(LevelChange).where(LevelChange.episode_id == episode_id)
                               .order_by(LevelChange.ts, LevelChange.id)).all()
            actions = s.scalars(select(Action).where(Action.episode_id == episode_id)
                                .order_by(Action.at, Action.id)).all()
            notes = s.scalars(select(Notification).where(Notification.episode == episode_id)
                              .order_by(Notification.created_at, Notification.id)).all()
            return {
                "episode": as_dict(ep),
                "levels": [as_dict(x, ("episode_id",)) for x in levels],
                "actions": [as_dict(x, ("episode_id", "silence_id")) for x in actions],
                "notifications": [as_dict(x, ("event", "episode")) for x in notes],
            }
