"""Noise control decisions: silences, inhibition, per-recipient rate limits, group wait. Pure.

Each decision is a small function over plain data, with the current time passed in (the pipeline
suppress -> group -> dedup -> rate-limit -> send -> record calls these; the database, the clock and
the channels stay in the shell).

Decisions taken here, and why:

- **Red is never hidden by default.** A silence hides levels up to its ``max_level`` (default
  orange); only a silence that explicitly says ``max_level: red`` hides red. Inhibition never
  hides red. The rate limit never drops red; at or over the provider cap it sends anyway and
  says so (``"send_over_cap"``), so that the caller tells the operators (issue 3 "Noise control").
- **An all-clear follows its warning through a silence.** An all-clear (level ``"normal"``) is
  silenced exactly when no warning message of its episode went out because of a silence: the
  caller passes that silence's id (``episode_silenced_by``) from the record stage, and it is
  returned even if the silence has ended since, so nobody is told that a warning they never heard
  has ended. An all-clear for a warning that went out is never silenced, whatever silences are
  active now: lost all-clears are one of the faults users complain about most (STANDARDS.md).
- **A sensor in fault holds its all-clear.** A sensor in fault suppresses its non-red threshold
  warnings, and its all-clear too: the reading that cleared the episode came from a sensor known
  to be faulty, and a false all-clear sends evacuated residents back (resident all-clears say
  "return only when told"). The reason differs (:data:`FAULT_ALL_CLEAR`) so that the caller can
  show the held all-clear to the operators, who verify on site and close the episode by hand.
- **A site at red** (another episode of the same site is at red) suppresses its blue, yellow and
  orange raised/escalated/deescalated messages; it never suppresses an all-clear.
- The last two are the default inhibition rules; ``notify.inhibit`` replaces them
  (config/inhibit.py), but no rule can inhibit red.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from config.models import LEVELS
from config.inhibit import DEFAULT_INHIBIT_RULES, InhibitRule
from config.notify import RateLimit

__all__ = [
    "FAULT",
    "FAULT_ALL_CLEAR",
    "MATCHER_KEYS",
    "SITE_AT_RED",
    "RateDecision",
    "SilenceRule",
    "group_wait_until",
    "inhibited",
    "rate_decision",
    "silenced_by",
]

RateDecision = Literal["send", "drop", "send_over_cap"]

#: Keys a silence matcher may have; an omitted key matches anything (alerts/store.py ``Silence``).
MATCHER_KEYS: frozenset[str] = frozenset({"site", "subject", "rule", "max_level"})

#: The default rules' names (config/inhibit.py), the reasons :func:`inhibited` returns with them.
FAULT, FAULT_ALL_CLEAR, SITE_AT_RED = (rule.name for rule in DEFAULT_INHIBIT_RULES)

_RANK: dict[str, int] = {level: i for i, level in enumerate(LEVELS)}  # normal 0 .. red 4
_WARNING_LEVELS = ("blue", "yellow", "orange", "red")
_KINDS = ("raised", "escalated", "deescalated", "cleared")
_DEFAULT_MAX_LEVEL = "orange"


def _rank(level: str) -> int:
    try:
        return _RANK[level]
    except KeyError:
        raise ValueError(f"unknown level {level!r} (one of {list(LEVELS)})") from None


@dataclass(frozen=True)
class SilenceRule:
    """A silence or maintenance window, as stored in the ``silences`` table.

    Active on ``[starts_at, min(ends_at, ended_at))``: the start is inclusive, the end exclusive,
    and ``ended_at`` is set when someone ends the silence early. All times timezone-aware.
    ``matcher`` keys: ``site``, ``subject`` (exact, or a prefix ending in ``*`` such as
    ``"TD-001/*"``), ``rule`` and ``max_level`` (blue..red, default orange).
    """

    id: int
    matcher: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None

    def __post_init__(self) -> None:
        unknown = set(self.matcher) - MATCHER_KEYS
        if unknown:
            # A typo such as "sensor" would otherwise make the silence match everything.
            raise ValueError(
                f"silence {self.id}: unknown matcher keys {sorted(unknown)} "
                f"(use {sorted(MATCHER_KEYS)})"
            )
        max_level = self.matcher.get("max_level", _DEFAULT_MAX_LEVEL)
        if max_level not in _WARNING_LEVELS:
            raise ValueError(
                f"silence {self.id}: max_level must be one of "
                f"{list(_WARNING_LEVELS)}, got {max_level!r}"
            )
        for name in ("starts_at", "ends_at", "ended_at"):
            t = getattr(self, name)
            if t is not None and t.utcoffset() is None:
                raise ValueError(f"silence {self.id}: {name} must be timezone-aware, got {t!r}")

    @property
    def max_level(self) -> str:
        return self.matcher.get("max_level", _DEFAULT_MAX_LEVEL)

    def active(self, now: datetime) -> bool:
        """``starts_at <= now < min(ends_at, ended_at)``."""
        end = self.ends_at if self.ended_at is None else min(self.ends_at, self.ended_at)
        return self.starts_at <= now < end

    def matches(self, *, site: str, subject: str, rule: str, level: str) -> bool:
        """Whether the matcher covers this subject at this warning level (time not considered)."""
        m = self.matcher
        if "site" in m and m["site"] != site:
            return False
        if "rule" in m and m["rule"] != rule:
            return False
        if "subject" in m and not _subject_matches(m["subject"], subject):
            return False
        return _rank(level) <= _rank(self.max_level)


def _subject_matches(pattern: str, subject: str) -> bool:
    """Exact match, or a prefix match when the pattern ends in ``*`` (``"TD-001/*"``, ``"*"``)."""
    if pattern.endswith("*"):
        return subject.startswith(pattern[:-1])
    return subject == pattern


def silenced_by(
    silences: Iterable[SilenceRule],
    *,
    site: str,
    subject: str,
    rule: str,
    level: str,
    now: datetime,
    episode_silenced_by: int | None = None,
) -> int | None:
    """The id of the first silence that hides this message at ``now``, or ``None``.

    ``level`` is the message's level. For a warning (blue..red): the first silence active at
    ``now`` whose matcher matches, where a silence never hides a level above its ``max_level``.
    For an all-clear (``"normal"``): ``episode_silenced_by``, the silence that kept every warning
    message of this episode from going out (``None`` when any went out); the silences active now
    are not consulted, so an all-clear is silenced exactly when its warning was (module docstring).
    """
    if _rank(level) == 0:
        return episode_silenced_by
    for silence in silences:
        if silence.active(now) and silence.matches(
            site=site, subject=subject, rule=rule, level=level
        ):
            return silence.id
    return None


def inhibited(*, level: str, kind: str, site_level: str, subject_in_fault: bool,
              rules: Sequence[InhibitRule] = DEFAULT_INHIBIT_RULES) -> str | None:
    """The name of the first of ``rules`` (config/inhibit.py) that inhibits a message, or ``None``
    when it goes on.

    ``level`` is the event's new level (``"normal"`` for an all-clear); ``site_level``: the highest
    level of the site's other active episodes (``"normal"`` if none); ``subject_in_fault``: the
    subject's sensor is in fault. Red is never inhibited, whatever the rules say. With the default
    rules: a fault inhibits the other threshold warnings (:data:`FAULT`) and holds the all-clear
    (:data:`FAULT_ALL_CLEAR`); a site at red inhibits blue, yellow and orange
    raised/escalated/deescalated messages (:data:`SITE_AT_RED`), never an all-clear; when both
    apply, the fault is named: it is the more specific cause.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r} (one of {list(_KINDS)})")
    rank = _rank(level)
    if (kind == "cleared") != (rank == 0):
        raise ValueError(f"a {kind} message cannot be at level {level!r}")
    _rank(site_level)  # an unknown level raises, as for ``level``
    if level == "red":
        return None
    for rule in rules:
        if rule.matches(level=level, kind=kind, subject_in_fault=subject_in_fault, site_level=site_level):
            return rule.name
    return None


def rate_decision(*, sent_in_window: int, level: str, cfg: RateLimit) -> RateDecision:
    """Send, drop or send over the provider cap, given what this recipient got in the window.

    ``sent_in_window``: messages sent to the recipient in the last ``cfg.window_h`` hours.
    Non-red (including an all-clear, level ``"normal"``) stops ``red_reserve`` short of the cap so
    that red still fits under it; red is never dropped, and at or over the cap it is sent as
    ``"send_over_cap"`` so that the caller tells the operators the provider may block it. A
    caller that wants the all-clear of a red episode treated as red passes ``"red"``.
    """
    if sent_in_window < 0:
        raise ValueError(f"sent_in_window must be >= 0, got {sent_in_window}")
    if _rank(level) == _rank("red"):
        return "send" if sent_in_window < cfg.max_per_recipient else "send_over_cap"
    return "send" if sent_in_window < cfg.max_per_recipient - cfg.red_reserve else "drop"


def group_wait_until(*, level: str, created_at: datetime, group_wait_s: float) -> datetime:
    """When a notification created at ``created_at`` may leave its group: red never waits."""
    if group_wait_s < 0:
        raise ValueError(f"group_wait_s must be >= 0, got {group_wait_s}")
    if _rank(level) == _rank("red"):
        return created_at
    return created_at + timedelta(seconds=group_wait_s)
