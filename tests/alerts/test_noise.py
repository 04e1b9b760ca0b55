"""Noise control decisions (alerts/noise.py): silences, inhibition, rate limits, group wait.

Issue 3 "Noise control": red passes silences (unless one says max_level red), is never inhibited
and never dropped by the rate limit; the all-clear follows its warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from alerts.noise import (
    FAULT,
    FAULT_ALL_CLEAR,
    SITE_AT_RED,
    SilenceRule,
    group_wait_until,
    inhibited,
    rate_decision,
    silenced_by,
)
from config.inhibit import DEFAULT_INHIBIT_RULES, InhibitRule
from config.notify import NotifySettings, RateLimit

CST = timezone(timedelta(hours=8))
T0 = datetime(2025, 11, 23, 14, 0, tzinfo=CST)
US = timedelta(microseconds=1)
H = timedelta(hours=1)
M = timedelta(minutes=1)


def _silence(
    matcher: dict[str, str] | None = None,
    *,
    id: int = 1,
    starts: datetime = T0,
    ends: datetime = T0 + H,
    ended: datetime | None = None,
) -> SilenceRule:
    return SilenceRule(id=id, matcher=matcher or {}, starts_at=starts, ends_at=ends, ended_at=ended)


def _check(
    silences: Iterable[SilenceRule],
    *,
    now: datetime = T0 + M,
    site: str = "TD-001",
    subject: str = "TD-001/PZ-01",
    rule: str = "phreatic_depth",
    level: str = "yellow",
    episode_silenced_by: int | None = None,
) -> int | None:
    return silenced_by(
        silences,
        site=site,
        subject=subject,
        rule=rule,
        level=level,
        now=now,
        episode_silenced_by=episode_silenced_by,
    )


# ----------------------------------------------------------------------------- silence window


@pytest.mark.parametrize(
    ("now", "ended", "expected"),
    [
        (T0 - US, None, None),  # before the start
        (T0, None, 1),  # start inclusive
        (T0 + 30 * M, None, 1),
        (T0 + H - US, None, 1),
        (T0 + H, None, None),  # end exclusive
        (T0 + H + M, None, None),
        # Ended early at T0 + 10 min: that end is exclusive too.
        (T0 + 10 * M - US, T0 + 10 * M, 1),
        (T0 + 10 * M, T0 + 10 * M, None),
        (T0 + 30 * M, T0 + 10 * M, None),
        # "Ended" after its planned end changes nothing.
        (T0 + H - US, T0 + 2 * H, 1),
        (T0 + H, T0 + 2 * H, None),
        # Ended before it started: never active.
        (T0, T0 - M, None),
    ],
)
def test_silence_window_edges(now: datetime, ended: datetime | None, expected: int | None) -> None:
    assert _check([_silence(ended=ended)], now=now) == expected


def test_window_compares_instants_across_zones() -> None:
    utc_start = T0.astimezone(UTC)  # 06:00 UTC is 14:00 Beijing time
    silence = _silence(starts=utc_start, ends=utc_start + H)
    assert _check([silence], now=T0) == 1
    assert _check([silence], now=T0 - US) is None


# ----------------------------------------------------------------------------- matcher


@pytest.mark.parametrize(
    ("matcher", "site", "subject", "rule", "expected"),
    [
        ({}, "TD-001", "TD-001/PZ-01", "phreatic_depth", 1),
        ({"site": "TD-001"}, "TD-001", "TD-001/PZ-01", "phreatic_depth", 1),
        ({"site": "CH-001"}, "TD-001", "TD-001/PZ-01", "phreatic_depth", None),
        ({"rule": "phreatic_depth"}, "TD-001", "TD-001/PZ-01", "phreatic_depth", 1),
        ({"rule": "freeboard"}, "TD-001", "TD-001/PZ-01", "phreatic_depth", None),
        ({"subject": "TD-001/PZ-01"}, "TD-001", "TD-001/PZ-01", "phreatic_depth", 1),
        ({"subject": "TD-001/PZ-01"}, "TD-001", "TD-001/PZ-011", "phreatic_depth", None),
        ({"subject": "TD-001/PZ-01"}, "TD-001", "TD-001/PZ-0", "phreatic_depth", None),
        # Trailing-* glob: a prefix.
        ({"subject": "TD-001/*"}, "TD-001", "TD-001/PZ-01", "phreatic_depth", 1),
        ({"subject": "TD-001/*"}, "TD-001", "TD-001/GNSS-01", "surface_displacement", 1),
        ({"subject": "TD-001/*"}, "TD-0011", "TD-0011/PZ-01", "phreatic_depth", None),
        ({"subject": "TD-001/*"}, "CH-001", "CH-001/GT-101", "combustible_gas", None),
        ({"subject": "TD-001/PZ-*"}, "TD-001", "TD-001/PZ-02", "phreatic_depth", 1),
        ({"subject": "TD-001/PZ-*"}, "TD-001", "TD-001/FB-01", "freeboard", None),
        ({"subject": "*"}, "CH-001", "CH-001/GT-101", "combustible_gas", 1),
        # A * elsewhere is literal.
        ({"subject": "TD-*/PZ-01"}, "TD-001", "TD-001/PZ-01", "phreatic_depth", None),
        # Every given key must match.
        (
            {"site": "TD-001", "subject": "TD-001/*", "rule": "freeboard"},
            "TD-001",
            "TD-001/FB-01",
            "freeboard",
            1,
        ),
        (
            {"site": "TD-001", "subject": "TD-001/*", "rule": "freeboard"},
            "TD-001",
            "TD-001/PZ-01",
            "phreatic_depth",
            None,
        ),
    ],
)
def test_matcher(
    matcher: dict[str, str], site: str, subject: str, rule: str, expected: int | None
) -> None:
    assert _check([_silence(matcher)], site=site, subject=subject, rule=rule) == expected


@pytest.mark.parametrize(
    ("max_level", "level", "expected"),
    [
        (None, "blue", 1),  # default max_level orange
        (None, "yellow", 1),
        (None, "orange", 1),
        (None, "red", None),  # red passes a default silence
        ("blue", "blue", 1),
        ("blue", "yellow", None),
        ("yellow", "yellow", 1),
        ("yellow", "orange", None),
        ("orange", "red", None),
        ("red", "orange", 1),
        ("red", "red", 1),  # only an explicit max_level red hides red
    ],
)
def test_max_level(max_level: str | None, level: str, expected: int | None) -> None:
    matcher = {"site": "TD-001"} | ({"max_level": max_level} if max_level else {})
    assert _check([_silence(matcher)], level=level) == expected


def test_first_active_matching_silence_wins() -> None:
    silences = [
        _silence({"site": "CH-001"}, id=1),  # another site
        _silence({}, id=2, starts=T0 + H, ends=T0 + 2 * H),  # not yet
        _silence({}, id=3, ended=T0),  # ended
        _silence({"max_level": "yellow"}, id=4),  # too low for orange
        _silence({"subject": "TD-001/*"}, id=5),
        _silence({}, id=6),
    ]
    assert _check(silences, level="orange") == 5
    assert _check(silences[:-2], level="orange") is None
    assert _check(iter(silences), level="yellow") == 4  # any iterable


@pytest.mark.parametrize(
    ("episode_silenced_by", "active", "expected"),
    [
        # The episode's warnings were all silenced by silence 7: the all-clear is too, even
        # when that silence has ended since and nothing is active now.
        (7, [], 7),
        (7, [_silence({}, id=1)], 7),
        # A warning of the episode went out: its all-clear is never silenced, even by an active
        # silence that matches the subject and explicitly covers red.
        (None, [_silence({}, id=1)], None),
        (None, [_silence({"max_level": "red"}, id=1)], None),
        (None, [], None),
    ],
)
def test_all_clear_follows_its_warning(
    episode_silenced_by: int | None, active: list[SilenceRule], expected: int | None
) -> None:
    assert _check(active, level="normal", episode_silenced_by=episode_silenced_by) == expected


def test_episode_silence_is_ignored_for_warnings() -> None:
    assert _check([], level="yellow", episode_silenced_by=7) is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"matcher": {"sensor": "PZ-01"}}, "unknown matcher keys ['sensor']"),
        ({"matcher": {"max_level": "purple"}}, "max_level must be one of"),
        ({"matcher": {"max_level": "normal"}}, "max_level must be one of"),
        ({"starts_at": datetime(2025, 11, 23, 14, 0)}, "starts_at must be timezone-aware"),
        ({"ended_at": datetime(2025, 11, 23, 14, 0)}, "ended_at must be timezone-aware"),
    ],
)
def test_bad_silences_are_rejected(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"id": 9, "matcher": {}, "starts_at": T0, "ends_at": T0 + H}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        SilenceRule(**(fields | kwargs))  # type: ignore[arg-type]


def test_unknown_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown level 'amber'"):
        _check([_silence()], level="amber")


# ----------------------------------------------------------------------------- inhibition

# (site_at_red, subject_in_fault) = (F, F), (T, F), (F, T), (T, T)
INHIBITION = [
    ("blue", "raised", (None, SITE_AT_RED, FAULT, FAULT)),
    ("yellow", "raised", (None, SITE_AT_RED, FAULT, FAULT)),
    ("orange", "raised", (None, SITE_AT_RED, FAULT, FAULT)),
    ("red", "raised", (None, None, None, None)),
    ("yellow", "escalated", (None, SITE_AT_RED, FAULT, FAULT)),
    ("orange", "escalated", (None, SITE_AT_RED, FAULT, FAULT)),
    ("red", "escalated", (None, None, None, None)),
    ("blue", "deescalated", (None, SITE_AT_RED, FAULT, FAULT)),
    ("yellow", "deescalated", (None, SITE_AT_RED, FAULT, FAULT)),
    ("orange", "deescalated", (None, SITE_AT_RED, FAULT, FAULT)),
    ("normal", "cleared", (None, None, FAULT_ALL_CLEAR, FAULT_ALL_CLEAR)),
]
FLAGS = [(False, False), (True, False), (False, True), (True, True)]


@pytest.mark.parametrize(
    ("level", "kind", "site_at_red", "subject_in_fault", "expected"),
    [
        (level, kind, red, fault, row[i])
        for level, kind, row in INHIBITION
        for i, (red, fault) in enumerate(FLAGS)
    ],
)
def test_inhibition_matrix(
    level: str, kind: str, site_at_red: bool, subject_in_fault: bool, expected: str | None
) -> None:
    got = inhibited(
        level=level, kind=kind, site_level="red" if site_at_red else "normal", subject_in_fault=subject_in_fault
    )
    assert got == expected


def test_inhibition_reasons() -> None:
    assert (FAULT, FAULT_ALL_CLEAR, SITE_AT_RED) == (
        "subject in fault",
        "subject in fault: all-clear held",
        "site at red",
    )


@pytest.mark.parametrize(
    ("level", "kind", "message"),
    [
        ("yellow", "cleared", "a cleared message cannot be at level 'yellow'"),
        ("normal", "raised", "a raised message cannot be at level 'normal'"),
        ("yellow", "opened", "unknown kind 'opened'"),
        ("amber", "raised", "unknown level 'amber'"),
    ],
)
def test_inhibition_rejects_impossible_messages(level: str, kind: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        inhibited(level=level, kind=kind, site_level="normal", subject_in_fault=False)


# ----------------------------------------------------------------------------- rate limit

CAP_50 = RateLimit(max_per_recipient=50, window_h=24, red_reserve=5)


@pytest.mark.parametrize(
    ("sent", "level", "expected"),
    [
        (0, "yellow", "send"),
        (44, "yellow", "send"),
        (45, "yellow", "drop"),  # 50 - 5: the reserve is kept for red
        (49, "yellow", "drop"),
        (50, "yellow", "drop"),
        (51, "yellow", "drop"),
        (44, "orange", "send"),
        (45, "orange", "drop"),
        (44, "normal", "send"),  # an all-clear is not red
        (45, "normal", "drop"),
        (0, "red", "send"),
        (44, "red", "send"),
        (45, "red", "send"),
        (49, "red", "send"),
        (50, "red", "send_over_cap"),  # never dropped; the operators are told
        (51, "red", "send_over_cap"),
    ],
)
def test_rate_decisions(sent: int, level: str, expected: str) -> None:
    assert rate_decision(sent_in_window=sent, level=level, cfg=CAP_50) == expected


@pytest.mark.parametrize(
    ("cfg", "sent", "level", "expected"),
    [
        (RateLimit(max_per_recipient=50, red_reserve=0), 49, "yellow", "send"),
        (RateLimit(max_per_recipient=50, red_reserve=0), 50, "yellow", "drop"),
        (RateLimit(max_per_recipient=3, red_reserve=5), 0, "yellow", "drop"),  # all for red
        (RateLimit(max_per_recipient=3, red_reserve=5), 2, "red", "send"),
        (RateLimit(max_per_recipient=3, red_reserve=5), 3, "red", "send_over_cap"),
        (RateLimit(), 44, "blue", "send"),  # the default mirrors mainland providers: 50, 5
        (RateLimit(), 45, "blue", "drop"),
    ],
)
def test_rate_decisions_other_caps(cfg: RateLimit, sent: int, level: str, expected: str) -> None:
    assert rate_decision(sent_in_window=sent, level=level, cfg=cfg) == expected


def test_rate_decision_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="sent_in_window must be >= 0"):
        rate_decision(sent_in_window=-1, level="red", cfg=CAP_50)
    with pytest.raises(ValueError, match="unknown level"):
        rate_decision(sent_in_window=0, level="amber", cfg=CAP_50)


# ----------------------------------------------------------------------------- group wait


@pytest.mark.parametrize(
    ("level", "wait_s", "expected"),
    [
        ("red", 30.0, T0),  # red never waits
        ("orange", 30.0, T0 + timedelta(seconds=30)),
        ("yellow", 30.0, T0 + timedelta(seconds=30)),
        ("blue", 30.0, T0 + timedelta(seconds=30)),
        ("normal", 30.0, T0 + timedelta(seconds=30)),  # all-clears group too
        ("yellow", 0.0, T0),
        ("yellow", 0.25, T0 + timedelta(milliseconds=250)),
    ],
)
def test_group_wait_until(level: str, wait_s: float, expected: datetime) -> None:
    assert group_wait_until(level=level, created_at=T0, group_wait_s=wait_s) == expected


def test_group_wait_rejects_negative_wait() -> None:
    with pytest.raises(ValueError, match="group_wait_s must be >= 0"):
        group_wait_until(level="yellow", created_at=T0, group_wait_s=-1)


# -- inhibition rules from the configuration (config/inhibit.py) ----------------------------------
def _rule(**kw: object) -> InhibitRule:
    return InhibitRule.model_validate({"name": "orange site", "source": {"site_level": "orange"},
                                       "levels": ["blue", "yellow"], "kinds": ["raised"]} | kw)


@pytest.mark.parametrize(("site_level", "level", "kind", "expected"), [
    ("orange", "yellow", "raised", "orange site"),
    ("red", "blue", "raised", "orange site"),  # at that level or above
    ("yellow", "yellow", "raised", None),
    ("orange", "orange", "raised", None),  # not a target level
    ("orange", "yellow", "escalated", None),  # not a target kind
    ("orange", "red", "raised", None),
])
def test_a_configured_rule_inhibits_what_it_names_and_nothing_else(
        site_level: str, level: str, kind: str, expected: str | None) -> None:
    assert inhibited(level=level, kind=kind, site_level=site_level, subject_in_fault=True,
                     rules=[_rule()]) == expected


def test_without_rules_nothing_is_inhibited() -> None:
    assert inhibited(level="yellow", kind="raised", site_level="red", subject_in_fault=True, rules=[]) is None


def test_the_default_rules_are_the_configuration_default() -> None:
    assert NotifySettings().inhibit == list(DEFAULT_INHIBIT_RULES)
    assert [r.name for r in DEFAULT_INHIBIT_RULES] == [FAULT, FAULT_ALL_CLEAR, SITE_AT_RED]


@pytest.mark.parametrize(("change", "message"), [
    ({"levels": ["orange", "red"]}, "red is never inhibited"),
    ({"kinds": ["cleared"]}, "list both `cleared` (kinds) and `normal`"),
    ({"source": {}}, "give exactly one source"),
    ({"source": {"fault": True, "site_level": "red"}}, "give exactly one source"),
    ({"levels": []}, "at least 1 item"),
])
def test_a_rule_that_cannot_be_meant_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        _rule(**change)
