"""Leases on outbox rows (alerts/claims.py): processes racing for due rows claim disjoint sets, a
live lease is respected, a lapsed one is taken over, and a process that lost its claim writes
nothing. Every test runs on SQLite and PostgreSQL (the ``store`` fixture of tests/alerts/db.py);
each simulated process has a Store (an engine and connection pool) of its own."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select, update

from alerts.claims import Claims, died_here, lease_s, owner_id
from alerts.store import Notification, Store
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

NOW = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
LEASE_S = 30.0


def rows(store: Store, n: int, *, status: str = "pending", not_before: dt.datetime = NOW,
         prefix: str = "k") -> list[int]:
    """``n`` outbox rows to distinct recipients; their ids."""
    made = [Notification(key=f"{prefix}{i}", channel="sms", episode="ep-1", site="TD-001", kind="raised",
                         level="red", recipient=f"+86137{i:08d}", role="operator", language="zh-CN", event="{}",
                         group_key=f"{prefix}{i}", status=status, created_at=NOW, not_before=not_before)
            for i in range(n)]
    with store.session.begin() as s:
        s.add_all(made)
    return [r.id for r in made]


def get(store: Store, row_id: int) -> Notification:
    with store.session() as s:
        row = s.get(Notification, row_id)
        assert row is not None
        return row


@pytest.fixture
def other(store: Store) -> Iterator[Store]:
    """A second process's view of the same database."""
    second = Store(store.url, migrate=False)
    try:
        yield second
    finally:
        second.engine.dispose()


def test_two_processes_take_turns_on_disjoint_rows(store: Store, other: Store) -> None:
    ids = rows(store, 60)
    a, b = Claims(store, "a", LEASE_S), Claims(other, "b", LEASE_S)
    got: dict[str, list[int]] = {"a": [], "b": []}
    while True:  # each passes the rows it already holds, as the dispatcher does within a pass
        batch_a = [r.id for r in a.claim_due(NOW, after=max(got["a"], default=0), limit=7)]
        batch_b = [r.id for r in b.claim_due(NOW, after=max(got["b"], default=0), limit=7)]
        if not batch_a and not batch_b:
            break
        got["a"] += batch_a
        got["b"] += batch_b
    assert not set(got["a"]) & set(got["b"])
    assert sorted(got["a"] + got["b"]) == ids
    assert got["a"] and got["b"]
    assert {get(store, i).claimed_by for i in got["b"]} == {"b"}


def test_racing_processes_claim_every_row_exactly_once(store: Store) -> None:
    """Four threads, each with its own engine, claim small batches at the same moment."""
    ids = rows(store, 200)
    stores = [Store(store.url, migrate=False) for _ in range(4)]
    claimed: list[list[int]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def process(n: int) -> None:
        claims = Claims(stores[n], f"p{n}", LEASE_S)
        try:
            start.wait(10)
            while batch := claims.claim_due(NOW, after=max(claimed[n], default=0), limit=5):
                claimed[n] += [r.id for r in batch]
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=process, args=(n,)) for n in range(len(stores))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for each in stores:
            each.engine.dispose()
    assert not errors, errors
    everything = [i for batch in claimed for i in batch]
    assert sorted(everything) == ids, "every row claimed, and by one process only"
    with store.session() as s:
        owners = dict(s.execute(select(Notification.id, Notification.claimed_by)).all())
    for n, batch in enumerate(claimed):
        assert {owners[i] for i in batch} <= {f"p{n}"}


def test_skip_locked_passes_rows_another_claim_is_choosing(store: Store, other: Store) -> None:
    """PostgreSQL: rows locked by a claim in progress are skipped, not waited for."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks: one writer at a time, the compare-and-set decides")
    ids = rows(store, 10)
    with store.engine.connect() as conn, conn.begin():
        conn.execute(select(Notification.id).where(Notification.id.in_(ids[:4])).with_for_update())
        done = threading.Event()
        got: list[int] = []

        def claim() -> None:
            got.extend(r.id for r in Claims(other, "b", LEASE_S).claim_due(NOW, limit=3))
            done.set()

        threading.Thread(target=claim, daemon=True).start()
        assert done.wait(10), "the claim waited for the locked rows"
    assert got == ids[4:7]


def test_a_live_lease_is_not_taken_over(store: Store, other: Store) -> None:
    [row] = rows(store, 1)
    assert [r.id for r in Claims(store, "a", LEASE_S).claim_due(NOW)] == [row]
    b = Claims(other, "b", LEASE_S)
    almost = NOW + dt.timedelta(seconds=LEASE_S - 1)
    assert b.claim_due(almost) == []
    assert b.take([row], almost, "pending") == []
    assert get(store, row).claimed_by == "a"


def test_a_lapsed_lease_is_taken_over(store: Store, other: Store) -> None:
    [row] = rows(store, 1)
    a, b = Claims(store, "a", LEASE_S), Claims(other, "b", LEASE_S)
    assert [r.id for r in a.claim_due(NOW)] == [row]
    later = NOW + dt.timedelta(seconds=LEASE_S + 1)
    taken = b.claim_due(later)
    assert [(r.id, r.claimed_by, r.claimed_until) for r in taken] == [
        (row, "b", later + dt.timedelta(seconds=LEASE_S))]
    # a comes back: its send is refused, its writes change nothing
    assert a.begin_send([row], later, body="x") is False
    assert a.write([row], status="suppressed") == set()
    assert get(store, row).status == "pending" and get(store, row).claimed_by == "b"


def test_a_process_may_claim_its_own_rows_again(store: Store) -> None:
    ids = rows(store, 3)
    a = Claims(store, "a", LEASE_S)
    assert [r.id for r in a.claim_due(NOW, limit=2)] == ids[:2]
    assert [r.id for r in a.take(ids, NOW, "pending")] == ids


def test_due_means_waiting_and_not_before_now(store: Store) -> None:
    unknown = rows(store, 1, status="unknown", prefix="unknown")
    later = rows(store, 1, not_before=NOW + dt.timedelta(seconds=1), prefix="later")
    rows(store, 1, status="sent", prefix="sent")
    rows(store, 1, status="sending", prefix="sending")
    a = Claims(store, "a", LEASE_S)
    assert [r.id for r in a.claim_due(NOW)] == unknown
    assert [r.id for r in a.claim_due(NOW + dt.timedelta(seconds=1), after=unknown[0])] == later


def test_begin_send_marks_all_rows_or_none(store: Store, other: Store) -> None:
    ids = rows(store, 2)
    a, b = Claims(store, "a", LEASE_S), Claims(other, "b", LEASE_S)
    assert len(a.take(ids, NOW, "pending")) == 2
    later = NOW + dt.timedelta(seconds=LEASE_S + 1)
    assert [r.id for r in b.take(ids[1:], later, "pending")] == ids[1:]
    assert a.begin_send(ids, later, body="x") is False
    assert [get(store, i).status for i in ids] == ["pending", "pending"]
    assert get(store, ids[0]).body is None
    # with both rows its own, the mark goes through and renews the lease
    assert a.take(ids[:1], later, "pending")
    assert a.begin_send(ids[:1], later, body="x") is True
    row = get(store, ids[0])
    assert (row.status, row.body, row.claimed_until) == ("sending", "x", later + dt.timedelta(seconds=LEASE_S))


def test_a_final_status_ends_the_lease_and_release_lets_go_of_the_rest(store: Store) -> None:
    ids = rows(store, 3)
    a = Claims(store, "a", LEASE_S)
    assert len(a.claim_due(NOW, limit=10)) == 3
    assert a.begin_send(ids[:1], NOW, body="x")
    assert a.write(ids[:1], status="sent", provider_id="SM1") == {ids[0]}
    assert a.write(ids[1:2], status="pending", error="503") == {ids[1]}
    assert (get(store, ids[0]).claimed_by, get(store, ids[1]).claimed_by) == (None, "a")
    assert a.release() == 2
    assert {get(store, i).claimed_until for i in ids} == {None}
    assert a.release() == 0


def test_expire_turns_only_lapsed_sends_unknown(store: Store, other: Store) -> None:
    [row] = rows(store, 1)
    a, b = Claims(store, "a", LEASE_S), Claims(other, "b", LEASE_S)
    a.claim_due(NOW)
    assert a.begin_send([row], NOW, body="x")
    assert b.expire(NOW + dt.timedelta(seconds=LEASE_S - 1)) == 0
    assert get(store, row).status == "sending"
    later = NOW + dt.timedelta(seconds=LEASE_S + 1)
    assert b.expire(later) == 1
    after = get(store, row)
    assert (after.status, after.not_before, after.claimed_by, after.claimed_until) == ("unknown", later, None, None)
    # the process that was sending answers late: its result is not written over the takeover
    assert a.write([row], status="sent", provider_id="SM1") == set()
    assert get(store, row).status == "unknown"
    # the takeover reconciles it like any unknown row
    assert [r.id for r in b.claim_due(later)] == [row]


def test_a_send_left_without_a_lease_is_reconciled_at_once(store: Store) -> None:
    """Rows a version without leases left ``sending`` (no claim) are reconciled at the next start."""
    [row] = rows(store, 1, status="sending")
    assert Claims(store, "a", LEASE_S).expire(NOW) == 1
    assert get(store, row).status == "unknown"


def test_write_filters_on_status(store: Store) -> None:
    ids = rows(store, 2)
    a = Claims(store, "a", LEASE_S)
    assert len(a.claim_due(NOW, limit=10)) == 2
    assert a.begin_send(ids[:1], NOW, body="x")
    assert a.write(None, only=("sending",), status="unknown") == {ids[0]}
    with store.session.begin() as s:
        s.execute(update(Notification).where(Notification.id == ids[1]).values(claimed_by="b"))
    assert a.write(None, error="e") == {ids[0]}


def test_lease_outlasts_the_longest_provider_call() -> None:
    assert lease_s(10) == 40.0  # connect 10 s + read 10 s + 20 s margin
    assert lease_s(3) == 40.0  # a CAP publish waits 10 s for its PUBACK
    assert lease_s(30) == 80.0


def test_an_owner_must_fit_the_column(store: Store) -> None:
    with pytest.raises(ValueError, match="longer than 64"):
        Claims(store, "x" * 65, LEASE_S)


def _owner_like(pid: int, *, host: str | None = None) -> str:
    """A claim owner of process ``pid`` in this PID namespace (on ``host``, default this one)."""
    mine = owner_id().split(":")
    return ":".join([host or mine[0], str(pid), "0000abcd", mine[3]])


def test_a_sending_row_of_a_process_that_died_here_is_reconciled_at_once(store: Store, other: Store) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # exited and reaped: its pid names no process
    sending, waiting = rows(store, 2)
    a = Claims(store, _owner_like(dead.pid), LEASE_S)
    assert [r.id for r in a.claim_due(NOW, limit=2)] == [sending, waiting]
    assert a.begin_send([sending], NOW, body="x")
    b = Claims(other, owner_id(), LEASE_S)
    soon = NOW + dt.timedelta(seconds=1)  # long before the lease runs out
    assert b.expire(soon) == 1
    assert get(store, sending).status == "unknown"
    assert [r.id for r in b.claim_due(soon, limit=2)] == [sending, waiting]


@pytest.mark.parametrize("holder", ["live process", "other host", "no namespace"])
def test_a_lease_of_a_live_or_unknown_process_is_waited_for(store: Store, other: Store, holder: str) -> None:
    if holder == "live process":
        owner = _owner_like(os.getppid())
    elif holder == "other host":
        owner = _owner_like(2**22 + 7, host="another-host")
    else:
        owner = f"{owner_id().split(':')[0]}:{2**22 + 7}:0000abcd"
    assert not died_here(owner)
    [row] = rows(store, 1)
    a = Claims(store, owner, LEASE_S)
    assert [r.id for r in a.claim_due(NOW)] == [row] and a.begin_send([row], NOW, body="x")
    b = Claims(other, owner_id(), LEASE_S)
    assert b.expire(NOW + dt.timedelta(seconds=1)) == 0
    assert get(store, row).status == "sending" and get(store, row).claimed_by == owner
