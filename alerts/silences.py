"""Silences and maintenance windows: a matcher, a start, an end, who made it and why, all audited.

A silence is active from ``starts_at`` (inclusive) to ``ends_at`` (exclusive), unless it was ended
early (``ended_at``). A matcher names any of ``site``, ``subject`` (exact, or a prefix ending in
``*``) and ``rule`` (at least one, so that nobody silences every warning by leaving all out) and
optionally ``max_level``: only warnings up to that level are silenced, orange when omitted, so red
gets through unless a silence says ``max_level: red``. Matching itself is decided by
:class:`alerts.noise.SilenceRule`, which every stored matcher is checked against on creation.

Creating and ending a silence each write an :class:`~alerts.store.Action` row
(``silence_create``, ``silence_end``).

Errors::

    SilenceError
     ├── UnknownSilence
     └── InvalidSilence   bad matcher, times, actor or reason; ending one that is over
                          (also a ValueError)
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select

from alerts.noise import SilenceRule
from alerts.store import Action, Silence, Store, utcnow
from config.models import LEVELS

__all__ = [
    "MATCHER_KEYS",
    "SILENCE_KINDS",
    "InvalidSilence",
    "SilenceError",
    "SilenceService",
    "UnknownSilence",
    "is_active",
    "matcher_site",
    "validate_matcher",
]

MATCHER_KEYS: tuple[str, ...] = ("site", "subject", "rule", "max_level")
SILENCE_KINDS: tuple[str, ...] = ("silence", "maintenance")


class SilenceError(Exception):
    """Base of the silence errors."""


class UnknownSilence(SilenceError):
    def __init__(self, silence_id: int) -> None:
        super().__init__(f"no silence {silence_id}")
        self.silence_id = silence_id


class InvalidSilence(SilenceError, ValueError):
    pass


def validate_matcher(matcher: Mapping[str, Any]) -> dict[str, str]:
    """A clean copy of ``matcher``, or :class:`InvalidSilence` saying what is wrong."""
    unknown = sorted(set(matcher) - set(MATCHER_KEYS))
    if unknown:
        raise InvalidSilence(f"unknown matcher key(s) {', '.join(unknown)} "
                             f"(allowed: {', '.join(MATCHER_KEYS)})")
    clean: dict[str, str] = {}
    for key, value in matcher.items():
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise InvalidSilence(f"matcher {key} must be a non-empty string, got {value!r}")
        clean[key] = value.strip()
    if not any(k in clean for k in ("site", "subject", "rule")):
        raise InvalidSilence("a matcher needs at least one of site, subject, rule "
                             "(leaving all out would silence every warning)")
    if "max_level" in clean and clean["max_level"] not in LEVELS[1:]:
        raise InvalidSilence(f"max_level must be one of {', '.join(LEVELS[1:])}, "
                             f"got {clean['max_level']!r}")
    return clean


def matcher_site(matcher: Mapping[str, Any]) -> str | None:
    """The one site a matcher names: ``site``, or the site part of a ``subject`` that fixes it
    (``SITE/SENSOR``, ``SITE/*``). None when it names none -- a rule alone, ``*``, or a prefix
    such as ``TD-00*`` that may reach several sites (even of several enterprises)."""
    if matcher.get("site"):
        return str(matcher["site"])
    subject = str(matcher.get("subject") or "")
    site, slash, _ = subject.removesuffix("*").partition("/")
    return site if slash and site else None


def is_active(silence: Silence, now: dt.datetime) -> bool:
    """Start inclusive, end exclusive; an ended silence stops at ``ended_at``."""
    return (silence.starts_at <= now < silence.ends_at
            and (silence.ended_at is None or now < silence.ended_at))


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if value.tzinfo is None:
        raise InvalidSilence(f"{what} needs a timezone")
    return value


def _text(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise InvalidSilence(f"{what} must not be empty")
    return value.strip()


class SilenceService:
    """Create, end and look up silences, each change in its own audited transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(self, matcher: Mapping[str, Any], starts_at: dt.datetime, ends_at: dt.datetime,
               created_by: str, reason: str, kind: str = "silence",
               now: dt.datetime | None = None) -> Silence:
        now = now or utcnow()
        clean = validate_matcher(matcher)
        if kind not in SILENCE_KINDS:
            raise InvalidSilence(f"kind must be one of {', '.join(SILENCE_KINDS)}, got {kind!r}")
        starts_at, ends_at = _aware(starts_at, "start"), _aware(ends_at, "end")
        if ends_at <= starts_at:
            raise InvalidSilence(f"the end ({ends_at.isoformat()}) must be after the start "
                                 f"({starts_at.isoformat()})")
        if ends_at <= now:
            raise InvalidSilence(f"the end ({ends_at.isoformat()}) is already past")
        actor, why = _text(created_by, "creator (--by)"), _text(reason, "reason")
        try:  # the notification pipeline reads every stored silence through SilenceRule
            SilenceRule(0, clean, starts_at, ends_at)
        except ValueError as exc:
            raise InvalidSilence(str(exc)) from None
        with self._store.session.begin() as s:
            silence = Silence(kind=kind, matcher=clean, starts_at=starts_at, ends_at=ends_at,
                              created_by=actor, reason=why, created_at=now)
            s.add(silence)
            s.flush()
            s.add(Action(silence_id=silence.id, action="silence_create", actor=actor, at=now,
                         category=kind, text=why))
        return silence

    def end(self, silence_id: int, by: str, now: dt.datetime | None = None) -> Silence:
        """End a silence now; one already over (ended, or past its end) is an error."""
        now = now or utcnow()
        actor = _text(by, "actor (--by)")
        with self._store.session.begin() as s:
            silence = s.get(Silence, silence_id, with_for_update=True)
            if silence is None:
                raise UnknownSilence(silence_id)
            if silence.ended_at is not None:
                raise InvalidSilence(f"silence {silence_id} was already ended by "
                                     f"{silence.ended_by} at {silence.ended_at.isoformat()}")
            if silence.ends_at <= now:
                raise InvalidSilence(f"silence {silence_id} already expired at "
                                     f"{silence.ends_at.isoformat()}")
            silence.ended_at, silence.ended_by = now, actor
            s.add(Action(silence_id=silence.id, action="silence_end", actor=actor, at=now,
                         category=silence.kind))
        return silence

    def get(self, silence_id: int) -> Silence:
        with self._store.session() as s:
            silence = s.get(Silence, silence_id)
        if silence is None:
            raise UnknownSilence(silence_id)
        return silence

    def active(self, now: dt.datetime) -> builtins.list[Silence]:
        """Silences in force at ``now``, oldest start first."""
        q = (select(Silence)
             .where(Silence.starts_at <= now, Silence.ends_at > now,
                    or_(Silence.ended_at.is_(None), Silence.ended_at > now))
             .order_by(Silence.starts_at, Silence.id))
        with self._store.session() as s:
            return builtins.list(s.scalars(q).all())

    def list(self, include_ended: bool = False,
             now: dt.datetime | None = None) -> builtins.list[Silence]:
        """Current and future silences (with ``include_ended``: also expired and ended ones)."""
        q = select(Silence).order_by(Silence.starts_at, Silence.id)
        if not include_ended:
            now = now or utcnow()
            q = q.where(Silence.ends_at > now,
                        or_(Silence.ended_at.is_(None), Silence.ended_at > now))
        with self._store.session() as s:
            return builtins.list(s.scalars(q).all())
