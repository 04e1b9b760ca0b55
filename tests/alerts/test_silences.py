"""Silences and maintenance windows: validation, audit rows, active() at its edges.

Store tests run on SQLite and PostgreSQL (tests/alerts/db.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from alerts.noise import SilenceRule
from alerts.silences import (
    InvalidSilence,
    SilenceError,
    SilenceService,
    UnknownSilence,
    is_active,
    matcher_site,
    validate_matcher,
)
from alerts.store import Action, Store
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

T0 = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)
US = dt.timedelta(microseconds=1)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


@pytest.mark.parametrize(("matcher", "error"), [
    ({}, "at least one of site, subject, rule"),
    ({"max_level": "red"}, "at least one of site, subject, rule"),
    ({"site": "CH-001", "sensor": "GT-01"}, "unknown matcher key(s) sensor"),
    ({"site": ""}, "matcher site must be a non-empty string"),
    ({"site": 7}, "matcher site must be a non-empty string"),
    ({"site": "CH-001", "max_level": "normal"},
     "max_level must be one of blue, yellow, orange, red"),
    ({"site": "CH-001", "max_level": "purple"}, "max_level must be one of"),
])
def test_bad_matchers(matcher: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidSilence) as info:
        validate_matcher(matcher)
    assert error in str(info.value)


def test_good_matcher_is_cleaned_and_accepted_by_the_pipeline() -> None:
    clean = validate_matcher({"site": " TD-001 ", "subject": "TD-001/*", "rule": None,
                              "max_level": "red"})
    assert clean == {"site": "TD-001", "subject": "TD-001/*", "max_level": "red"}
    SilenceRule(1, clean, at(0), at(1))  # the notification pipeline's reading of it


@pytest.mark.parametrize(("matcher", "site"), [
    ({"site": "CH-001"}, "CH-001"),
    ({"site": "CH-001", "subject": "CH-001/GT-101"}, "CH-001"),
    ({"site": "CH-001", "subject": "TD-001/*"}, "CH-001"),  # matches nothing beyond CH-001
    ({"subject": "TD-001/PZ-01"}, "TD-001"),
    ({"subject": "TD-001/*"}, "TD-001"),
    ({"subject": "TD-001/P*"}, "TD-001"),
    ({"subject": "TD-001*"}, None),  # would reach TD-0010 too
    ({"subject": "TD-001"}, None),  # no subject has no sensor
    ({"subject": "*"}, None),
    ({"subject": "/PZ-01"}, None),
    ({"rule": "rain_1h"}, None),
    ({"rule": "rain_1h", "max_level": "red"}, None),
])
def test_the_site_a_matcher_names(matcher: dict[str, str], site: str | None) -> None:
    assert matcher_site(matcher) == site


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"ends_at": at(0)}, "must be after the start"),
    ({"ends_at": at(-5)}, "must be after the start"),
    ({"starts_at": at(-60), "ends_at": at(-30)}, "is already past"),
    ({"reason": "  "}, "reason must not be empty"),
    ({"created_by": ""}, "creator (--by) must not be empty"),
    ({"kind": "holiday"}, "kind must be one of silence, maintenance"),
    ({"starts_at": dt.datetime(2025, 6, 1, 8)}, "start needs a timezone"),
    ({"matcher": {"zone": "Z1"}}, "unknown matcher key(s) zone"),
])
def test_create_validation(store: Store, kwargs: dict[str, Any], error: str) -> None:
    args: dict[str, Any] = {"matcher": {"site": "CH-001"}, "starts_at": at(0), "ends_at": at(60),
                            "created_by": "李值班", "reason": "检修", "now": at(0)}
    args.update(kwargs)
    with pytest.raises(InvalidSilence) as info:
        SilenceService(store).create(**args)
    assert error in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, SilenceError)
    assert SilenceService(store).list(include_ended=True) == []


def test_create_and_end_are_audited(store: Store) -> None:
    service = SilenceService(store)
    silence = service.create({"site": "TD-001", "max_level": "orange"}, at(0), at(120), "李值班",
                             "尾矿库坝体检修", kind="maintenance", now=at(-1))
    assert silence.kind == "maintenance"
    assert silence.matcher == {"site": "TD-001", "max_level": "orange"}
    assert (silence.starts_at, silence.ends_at, silence.created_at) == (at(0), at(120), at(-1))
    ended = service.end(silence.id, "王主任", now=at(30))
    assert (ended.ended_at, ended.ended_by) == (at(30), "王主任")
    with store.session() as s:
        rows = s.scalars(select(Action).order_by(Action.id)).all()
    assert [(r.action, r.silence_id, r.actor, r.at, r.category, r.text, r.episode_id)
            for r in rows] == [
        ("silence_create", silence.id, "李值班", at(-1), "maintenance", "尾矿库坝体检修", None),
        ("silence_end", silence.id, "王主任", at(30), "maintenance", None, None),
    ]
    assert service.get(silence.id).ended_by == "王主任"


def test_end_errors(store: Store) -> None:
    service = SilenceService(store)
    silence = service.create({"rule": "rain_1h"}, at(0), at(10), "x", "y", now=at(0))
    with pytest.raises(UnknownSilence, match="no silence 999"):
        service.end(999, "x")
    with pytest.raises(InvalidSilence, match="must not be empty"):
        service.end(silence.id, " ", now=at(1))
    with pytest.raises(InvalidSilence, match="already expired"):
        service.end(silence.id, "x", now=at(10))
    service.end(silence.id, "x", now=at(5))
    with pytest.raises(InvalidSilence, match="already ended by x"):
        service.end(silence.id, "x", now=at(6))


def test_active_edges(store: Store) -> None:
    service = SilenceService(store)
    plain = service.create({"site": "CH-001"}, at(0), at(60), "x", "r", now=at(-10))
    early = service.create({"site": "TD-001"}, at(0), at(60), "x", "r", now=at(-10))
    service.end(early.id, "x", now=at(30))
    cases = [  # time -> ids active
        (at(0) - US, []),
        (at(0), [plain.id, early.id]),  # start inclusive
        (at(30) - US, [plain.id, early.id]),
        (at(30), [plain.id]),  # ended early: gone from ended_at on
        (at(60) - US, [plain.id]),
        (at(60), []),  # end exclusive
    ]
    for now, expected in cases:
        got = service.active(now)
        assert [s.id for s in got] == expected, now
        assert all(is_active(s, now) for s in got)
        others = [s for s in service.list(include_ended=True) if s.id not in expected]
        assert not any(is_active(s, now) for s in others)
        # the pipeline's reading of the same rows agrees
        rules = [SilenceRule(s.id, s.matcher, s.starts_at, s.ends_at, s.ended_at)
                 for s in service.list(include_ended=True)]
        assert [r.id for r in rules if r.active(now)] == expected


def test_list(store: Store) -> None:
    service = SilenceService(store)
    future = service.create({"site": "RG-001"}, at(100), at(200), "x", "r", now=at(0))
    expired = service.create({"site": "CH-001"}, at(0), at(10), "x", "r", now=at(0))
    ended = service.create({"site": "TD-001"}, at(0), at(300), "x", "r", now=at(0))
    service.end(ended.id, "x", now=at(5))
    assert [s.id for s in service.list(now=at(20))] == [future.id]
    assert [s.id for s in service.list(now=at(3))] == [expired.id, ended.id, future.id]
    assert [s.id for s in service.list(include_ended=True)] == [expired.id, ended.id, future.id]
