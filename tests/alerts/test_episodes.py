"""The warning lifecycle: pure transition rules, event application, operator actions.

Store tests run on SQLite and PostgreSQL (tests/alerts/db.py).
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from alerts.episodes import (
    EpisodeError,
    EpisodeService,
    InvalidArgument,
    InvalidTransition,
    UnknownEpisode,
    apply_event,
    transition,
)
from alerts.store import Action, Episode, LevelChange, Notification, Store
from config import Config, example_dir, load_config
from formats.warning import WarningEvent
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

T0 = dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC)


def minutes(n: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=n)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(example_dir())


def ev(kind: str, level: str, previous: str, ts: int, episode: str = "ep-1", site: str = "CH-001",
       value: float = 30.0) -> WarningEvent:
    return WarningEvent(episode=episode, site=site, subject=f"{site}/GT-01", rule="combustible_gas",
                        kind=kind, level=level, previous=previous, ts=ts,  # type: ignore[arg-type]
                        emitted_at=ts + 5, value=value, threshold=25.0, unit="%LEL")


def apply(store: Store, config: Config, event: WarningEvent, now: dt.datetime) -> Episode | None:
    with store.session.begin() as s:
        return apply_event(s, event, config, now)


def count(store: Store, model: type, **where: object) -> int:
    with store.session() as s:
        q = select(func.count()).select_from(model)
        for key, value in where.items():
            q = q.where(getattr(model, key) == value)
        return int(s.scalar(q) or 0)


# --- pure transition rules, every state x action ------------------------------------------


@dataclass
class Facts:
    id: str = "ep-1"
    state: str = "active"
    level: str = "orange"
    peak: str = "orange"
    unit: str = "%LEL"
    acknowledged_by: str | None = None
    acknowledged_at: dt.datetime | None = None
    escalation_since: dt.datetime | None = None
    red_since: dt.datetime | None = None
    cleared_at: dt.datetime | None = None
    false_alarm: bool = False


ACKED = "李值班"
EARLY = "the warning has not cleared; closing it early needs a reason"
# (state, acknowledged_by, false_alarm, action, reason) -> new state, or the error's "why"
TRANSITIONS = [
    ("active", None, False, "acknowledge", None, "acknowledged"),
    ("acknowledged", ACKED, False, "acknowledge", None, f"already acknowledged by {ACKED}"),
    ("cleared", None, False, "acknowledge", None, "cleared"),
    ("cleared", ACKED, False, "acknowledge", None, f"already acknowledged by {ACKED}"),
    ("closed", None, False, "acknowledge", None, "a closed episode is final"),
    ("active", None, False, "dispose", None, "active"),
    ("acknowledged", ACKED, False, "dispose", None, "acknowledged"),
    ("cleared", None, False, "dispose", None, "cleared"),
    ("closed", ACKED, False, "dispose", None, "a closed episode is final"),
    ("cleared", None, False, "close", None, "closed"),
    ("cleared", ACKED, False, "close", "复核完毕", "closed"),
    ("active", None, False, "close", None, EARLY),
    ("active", None, False, "close", "   ", EARLY),
    ("active", None, False, "close", "传感器已拆除", "closed"),
    ("acknowledged", ACKED, False, "close", None, EARLY),
    ("acknowledged", ACKED, False, "close", "设备检修", "closed"),
    ("closed", None, False, "close", "again", "a closed episode is final"),
    ("active", None, False, "false_alarm", "探头进水", "active"),
    ("acknowledged", ACKED, False, "false_alarm", "探头进水", "acknowledged"),
    ("cleared", None, False, "false_alarm", "探头进水", "cleared"),
    ("active", None, True, "false_alarm", "探头进水", "already marked as a false alarm"),
    ("closed", None, False, "false_alarm", "探头进水", "a closed episode is final"),
]
ALLOWED = {"active", "acknowledged", "cleared", "closed"}


def _case_id(case: tuple[object, ...]) -> str:
    state, by, fa, action, reason, _ = case
    flags = ("+ack" if by else "") + ("+fa" if fa else "")
    return f"{state}{flags}-{action}{'-reason' if reason else ''}"


@pytest.mark.parametrize("case", TRANSITIONS, ids=_case_id)
def test_transition_rules(case: tuple[str, str | None, bool, str, str | None, str]) -> None:
    state, by, false_alarm, action, reason, expected = case
    facts = Facts(state=state, acknowledged_by=by, false_alarm=false_alarm)
    if expected in ALLOWED:
        assert transition(facts, action, reason=reason) == expected
    else:
        with pytest.raises(InvalidTransition) as info:
            transition(facts, action, reason=reason)
        assert str(info.value).endswith(f"episode ep-1: it is {state}; {expected}"), str(info.value)
        assert info.value.state == state and info.value.action == action


def test_unknown_action_and_state() -> None:
    with pytest.raises(InvalidArgument, match="unknown action 'reopen'"):
        transition(Facts(), "reopen")
    with pytest.raises(InvalidTransition, match="'open' is not a lifecycle state"):
        transition(Facts(state="open"), "dispose")


# --- the same table through the store-backed service ---------------------------------------


def _put_in_state(store: Store, config: Config, state: str, by: str | None,
                  false_alarm: bool) -> None:
    apply(store, config, ev("raised", "orange", "normal", 1_000), minutes(0))
    with store.session.begin() as s:
        ep = s.get(Episode, "ep-1")
        assert ep is not None
        ep.state, ep.acknowledged_by, ep.false_alarm = state, by, false_alarm
        ep.acknowledged_at = minutes(1) if by else None


@pytest.mark.parametrize("case", TRANSITIONS, ids=_case_id)
def test_service_transitions(store: Store, config: Config,
                             case: tuple[str, str | None, bool, str, str | None, str]) -> None:
    state, by, false_alarm, action, reason, expected = case
    _put_in_state(store, config, state, by, false_alarm)
    service = EpisodeService(store)
    calls = {
        "acknowledge": lambda: service.acknowledge("ep-1", "王安全员", now=minutes(5)),
        "dispose": lambda: service.dispose("ep-1", "王安全员", "on_site_check", "现场复核无泄漏",
                                           now=minutes(5)),
        "close": lambda: service.close("ep-1", "王安全员", reason, now=minutes(5)),
        "false_alarm": lambda: service.mark_false_alarm("ep-1", "王安全员", reason or "",
                                                        now=minutes(5)),
    }
    if expected in ALLOWED:
        ep = calls[action]()
        assert ep.state == expected
        assert ep.updated_at == minutes(5)
        with store.session() as s:
            (row,) = s.scalars(select(Action).where(Action.episode_id == "ep-1")).all()
        assert (row.action, row.actor, row.at) == (action, "王安全员", minutes(5))
        if action == "acknowledge":
            assert (ep.acknowledged_by, ep.acknowledged_at) == ("王安全员", minutes(5))
        if action == "close":
            assert (ep.closed_by, ep.closed_at, ep.close_reason) == ("王安全员", minutes(5),
                                                                     (reason or "").strip() or None)
        if action == "false_alarm":
            assert ep.false_alarm and row.text == reason
        if action == "dispose":
            assert (row.category, row.text) == ("on_site_check", "现场复核无泄漏")
    else:
        with pytest.raises(InvalidTransition, match=f"it is {state}; {expected}"):
            calls[action]()
        assert count(store, Action) == 0
        assert service.get("ep-1").state == state


def test_errors_share_one_base(store: Store, config: Config) -> None:
    service = EpisodeService(store)
    for call in (lambda: service.acknowledge("nope", "x"), lambda: service.show("nope"),
                 lambda: service.close("nope", "x", "r")):
        with pytest.raises(UnknownEpisode, match="no episode 'nope'"):
            call()
    apply(store, config, ev("raised", "red", "normal", 1_000), minutes(0))
    with pytest.raises(InvalidArgument, match="unknown disposal category 'pray'"):
        service.dispose("ep-1", "x", "pray", "text")
    with pytest.raises(InvalidArgument, match="disposal text must not be empty"):
        service.dispose("ep-1", "x", "repair", "  ")
    with pytest.raises(InvalidArgument, match="actor"):
        service.acknowledge("ep-1", " ")
    with pytest.raises(InvalidArgument, match="reason must not be empty"):
        service.mark_false_alarm("ep-1", "x", "")
    assert issubclass(InvalidArgument, EpisodeError) and issubclass(InvalidTransition, EpisodeError)
    assert count(store, Action) == 0


def test_concurrent_acknowledgements_one_wins(store: Store, config: Config) -> None:
    apply(store, config, ev("raised", "red", "normal", 1_000), minutes(0))
    barrier, outcomes = threading.Barrier(4), []

    def ack(name: str) -> None:
        own = Store(store.url, migrate=False)  # one engine per operator, as separate processes
        barrier.wait()
        try:
            EpisodeService(own).acknowledge("ep-1", name)
            outcomes.append("ok")
        except InvalidTransition:
            outcomes.append("refused")
        finally:
            own.engine.dispose()

    threads = [threading.Thread(target=ack, args=(f"operator-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]
    assert count(store, Action, action="acknowledge") == 1


# --- events -----------------------------------------------------------------------------------


def test_raised_opens_an_episode(store: Store, config: Config) -> None:
    ep = apply(store, config, ev("raised", "yellow", "normal", 1_000, value=26.0), minutes(0))
    assert ep is not None
    got = EpisodeService(store).get("ep-1")
    assert (got.state, got.level, got.peak, got.kind, got.enterprise) == (
        "active", "yellow", "yellow", "chemical", "临港石化有限公司")
    assert (got.site, got.subject, got.rule, got.unit, got.last_value) == (
        "CH-001", "CH-001/GT-01", "combustible_gas", "%LEL", 26.0)
    assert (got.raised_ts, got.raised_at) == (1_000, minutes(0))
    assert (got.escalation_since, got.red_since) == (None, None)
    assert count(store, LevelChange, episode_id="ep-1") == 1


def test_escalation_and_red_since_are_set_once(store: Store, config: Config) -> None:
    steps = [
        (ev("raised", "yellow", "normal", 1_000), 0, None, None),
        (ev("escalated", "orange", "yellow", 2_000), 1, minutes(1), None),
        (ev("escalated", "red", "orange", 3_000), 2, minutes(1), minutes(2)),
        (ev("deescalated", "orange", "red", 4_000), 3, minutes(1), minutes(2)),
        (ev("deescalated", "yellow", "orange", 5_000), 4, minutes(1), minutes(2)),
        (ev("escalated", "red", "yellow", 6_000), 5, minutes(1), minutes(2)),
    ]
    for event, at, escalation_since, red_since in steps:
        assert apply(store, config, event, minutes(at)) is not None
        got = EpisodeService(store).get("ep-1")
        assert (got.level, got.escalation_since, got.red_since) == (
            event.level, escalation_since, red_since)
    assert got.peak == "red" and got.updated_at == minutes(5)


def test_raised_at_the_escalation_level_starts_the_timer(store: Store, config: Config) -> None:
    ep = apply(store, config, ev("raised", "red", "normal", 1_000), minutes(3))
    assert ep is not None and (ep.escalation_since, ep.red_since) == (minutes(3), minutes(3))


def test_duplicate_event_changes_nothing(store: Store, config: Config) -> None:
    history = [ev("raised", "yellow", "normal", 1_000), ev("escalated", "red", "yellow", 2_000),
               ev("cleared", "normal", "red", 3_000)]
    for i, event in enumerate(history):
        assert apply(store, config, event, minutes(i)) is not None
    before = EpisodeService(store).show("ep-1")
    for event in history:  # Kafka redelivers the whole partition after a crash
        assert apply(store, config, event, minutes(30)) is None
    assert EpisodeService(store).show("ep-1") == before
    assert before["episode"]["state"] == "cleared" and len(before["levels"]) == 3


def test_duplicate_does_not_abort_the_callers_transaction(store: Store, config: Config) -> None:
    first = ev("raised", "yellow", "normal", 1_000)
    apply(store, config, first, minutes(0))
    with store.session.begin() as s:
        assert apply_event(s, first, config, minutes(1)) is None
        second = ev("escalated", "orange", "yellow", 2_000)
        assert apply_event(s, second, config, minutes(1)) is not None
        s.add(Action(episode_id="ep-1", action="dispose", actor="x", at=minutes(1)))
    assert count(store, LevelChange) == 2 and count(store, Action) == 1


@pytest.mark.parametrize(("event", "state", "level", "peak", "escalation", "cleared"), [
    (ev("escalated", "orange", "yellow", 5_000), "active", "orange", "orange", True, False),
    (ev("deescalated", "orange", "red", 5_000), "active", "orange", "red", True, False),
    (ev("escalated", "yellow", "blue", 5_000), "active", "yellow", "yellow", False, False),
    (ev("cleared", "normal", "orange", 5_000), "cleared", "normal", "orange", False, True),
], ids=["escalated", "deescalated", "below-escalation", "cleared"])
def test_event_for_unknown_episode_opens_it(store: Store, config: Config, event: WarningEvent,
                                            state: str, level: str, peak: str, escalation: bool,
                                            cleared: bool) -> None:
    assert apply(store, config, event, minutes(7)) is not None
    got = EpisodeService(store).get("ep-1")
    assert (got.state, got.level, got.peak, got.raised_ts, got.raised_at) == (
        state, level, peak, 5_000, minutes(7))
    assert got.escalation_since == (minutes(7) if escalation else None)
    assert got.cleared_at == (minutes(7) if cleared else None)
    assert count(store, LevelChange, episode_id="ep-1") == 1


def test_cleared_keeps_the_acknowledgement(store: Store, config: Config) -> None:
    apply(store, config, ev("raised", "orange", "normal", 1_000), minutes(0))
    EpisodeService(store).acknowledge("ep-1", "张安全员", now=minutes(2))
    apply(store, config, ev("cleared", "normal", "orange", 2_000), minutes(9))
    got = EpisodeService(store).get("ep-1")
    assert (got.state, got.acknowledged_by, got.acknowledged_at, got.cleared_at) == (
        "cleared", "张安全员", minutes(2), minutes(9))


def test_closed_episode_records_levels_but_stays_closed(store: Store, config: Config) -> None:
    apply(store, config, ev("raised", "yellow", "normal", 1_000), minutes(0))
    EpisodeService(store).close("ep-1", "李值班", "传感器维护", now=minutes(1))
    apply(store, config, ev("escalated", "red", "yellow", 2_000), minutes(2))
    got = EpisodeService(store).get("ep-1")
    assert (got.state, got.level, got.peak, got.red_since, got.escalation_since) == (
        "closed", "red", "red", None, None)
    assert count(store, LevelChange, episode_id="ep-1") == 2


def test_late_event_goes_into_history_only(store: Store, config: Config) -> None:
    apply(store, config, ev("raised", "yellow", "normal", 1_000), minutes(0))
    apply(store, config, ev("escalated", "orange", "yellow", 3_000), minutes(1))
    apply(store, config, ev("escalated", "red", "yellow", 2_000), minutes(2))  # out of order
    got = EpisodeService(store).get("ep-1")
    assert (got.level, got.peak, got.red_since, got.escalation_since) == (
        "orange", "red", None, minutes(1))
    assert count(store, LevelChange, episode_id="ep-1") == 3


def test_up_again_after_cleared_reopens(store: Store, config: Config) -> None:
    apply(store, config, ev("raised", "yellow", "normal", 1_000), minutes(0))
    apply(store, config, ev("cleared", "normal", "yellow", 2_000), minutes(1))
    apply(store, config, ev("escalated", "orange", "normal", 3_000), minutes(2))
    got = EpisodeService(store).get("ep-1")
    assert (got.state, got.cleared_at, got.escalation_since) == ("active", None, minutes(2))


def test_unknown_site_and_bad_level(store: Store, config: Config) -> None:
    ep = apply(store, config, ev("raised", "yellow", "normal", 1_000, site="GONE-9"), minutes(0))
    assert ep is not None and (ep.kind, ep.enterprise) == ("unknown", "")
    with pytest.raises(InvalidArgument, match="level 'purple' is not a level"):
        apply(store, config, ev("escalated", "purple", "yellow", 2_000, site="GONE-9"), minutes(1))


# --- queries ----------------------------------------------------------------------------------


def test_list_filters_and_order(store: Store, config: Config) -> None:
    for i, (eid, level, site) in enumerate([("a1", "yellow", "CH-001"), ("b2", "red", "TD-001"),
                                            ("c3", "orange", "CH-001")]):
        event = ev("raised", level, "normal", 1_000 * (i + 1), episode=eid, site=site)
        apply(store, config, event, minutes(10 * i))
    service = EpisodeService(store)
    service.acknowledge("b2", "x", now=minutes(11))
    assert [e.id for e in service.list()] == ["c3", "b2", "a1"]
    assert [e.id for e in service.list(site="CH-001")] == ["c3", "a1"]
    assert [e.id for e in service.list(state="acknowledged")] == ["b2"]
    assert [e.id for e in service.list(since=minutes(10))] == ["c3", "b2"]
    assert [e.id for e in service.list(limit=1)] == ["c3"]
    with pytest.raises(InvalidArgument, match="unknown state 'open'"):
        service.list(state="open")


def test_show_and_resolve(store: Store, config: Config) -> None:
    eid = "3f2a9c1e-0000-5000-8000-000000000001"
    apply(store, config, ev("raised", "red", "normal", 1_000, episode=eid), minutes(0))
    apply(store, config, ev("raised", "red", "normal", 1_000, episode="3f2a0000"), minutes(0))
    service = EpisodeService(store)
    service.acknowledge(eid, "张安全员", now=minutes(1))
    service.dispose(eid, "张安全员", "evacuation", "已疏散厂区人员", now=minutes(2))
    with store.session.begin() as s:
        s.add(Notification(key="k1", channel="sms", episode=eid, site="CH-001", kind="raised",
                           level="red", recipient="+8613800138000", role="officer",
                           language="zh-CN", event="{}", body="【红色预警】", segments=2,
                           status="sent", delivery_status="delivered", created_at=minutes(0),
                           not_before=minutes(0)))
    data = service.show(eid)
    assert data["episode"]["id"] == eid and data["episode"]["state"] == "acknowledged"
    assert [(x["kind"], x["level"], x["ts"]) for x in data["levels"]] == [("raised", "red", 1_000)]
    assert [(a["action"], a["category"]) for a in data["actions"]] == [
        ("acknowledge", None), ("dispose", "evacuation")]
    assert [(n["recipient"], n["segments"], n["delivery_status"], n["body"])
            for n in data["notifications"]] == [("+8613800138000", 2, "delivered", "【红色预警】")]
    assert service.resolve(eid) == eid
    assert service.resolve("3f2a9") == eid
    with pytest.raises(InvalidArgument, match="prefix '3f2a' is ambiguous"):
        service.resolve("3f2a")
    for unknown in ("3f2", "ffff"):  # shorter than 4 characters is never a prefix
        with pytest.raises(UnknownEpisode):
            service.resolve(unknown)
