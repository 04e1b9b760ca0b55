"""Two dispatchers on one database (alerts/dispatch.py with alerts/claims.py): every notice goes
out once, and a send in flight when its process dies is reconciled with the provider after the
lease ran out -- never sent again while it may have reached the provider.

Real outbox rows planned by :class:`alerts.pipeline.Intake` from red warnings of CH-001 (seven SMS
recipients and two loudspeaker zones per episode), SMS through the fake Twilio server over HTTP,
on SQLite and PostgreSQL; each dispatcher has a Store (engine) of its own, as a process would.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import cast

import httpx
import pytest
from sqlalchemy import select

from alerts.channels.sms import SendResult, SmsChannel
from alerts.claims import Claims
from alerts.dispatch import Dispatcher
from alerts.fakes.twilio import FakeTwilioServer
from alerts.pipeline import Intake
from alerts.store import Notification, Store, utcnow
from config import example_dir, load_config
from formats.warning import WarningEvent, episode_id
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

CFG = load_config(example_dir(), env={})
LEASE_S = 30.0
SUBJECTS = ("CH-001/GT-101", "CH-001/GT-102")


class Clock:
    """Wall time (the fake provider stamps messages with it) plus a shift the test controls."""

    def __init__(self) -> None:
        self.shift = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return utcnow() + self.shift


class Crash(BaseException):
    """The process dies here (not an Exception: the dispatcher must not handle it)."""


class DyingChannel:
    """The real channel, except that the process dies during the create call: after the
    provider took the message (``reached``) or before the request got there."""

    def __init__(self, channel: SmsChannel, *, reached: bool) -> None:
        self.channel, self.reached = channel, reached

    def send(self, to: str, body: str, status_callback: str | None = None) -> SendResult:
        if self.reached:
            self.channel.send(to, body, status_callback)
        raise Crash

    def find_sent(self, to: str, body: str, since: dt.datetime) -> str | None:
        return self.channel.find_sent(to, body, since)


class FailingChannel:
    """The real channel, with a bug that raises once the provider has taken the message."""

    def __init__(self, channel: SmsChannel) -> None:
        self.channel, self.failures = channel, 1

    def send(self, to: str, body: str, status_callback: str | None = None) -> SendResult:
        result = self.channel.send(to, body, status_callback)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("bug after the create call")
        return result

    def find_sent(self, to: str, body: str, since: dt.datetime) -> str | None:
        return self.channel.find_sent(to, body, since)


class SlowChannel:
    """The real channel, whose create calls wait for ``go`` before they reach the provider."""

    def __init__(self, channel: SmsChannel) -> None:
        self.channel = channel
        self.entered, self.go = threading.Event(), threading.Event()

    def send(self, to: str, body: str, status_callback: str | None = None) -> SendResult:
        self.entered.set()
        assert self.go.wait(30)
        return self.channel.send(to, body, status_callback)

    def find_sent(self, to: str, body: str, since: dt.datetime) -> str | None:
        return self.channel.find_sent(to, body, since)


def red(subject: str, clock: Clock) -> WarningEvent:
    site, sensor_id = subject.split("/")
    sensor = CFG.sensor(site, sensor_id)
    assert sensor is not None
    rule = sensor.thresholds[0]
    ts = int(clock().timestamp() * 1000)
    rung = next(s.value for s in rule.ladder if s.level == "red")
    return WarningEvent(episode=episode_id(subject, rule.rule, ts), site=site, subject=subject, rule=rule.rule,
                        kind="raised", level="red", previous="normal", ts=ts, emitted_at=ts, value=rung,
                        threshold=rung, unit=sensor.unit, detail={"peak": "red", "raised_ts": ts,
                                                                    "quantity": sensor.quantity})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def planned(store: Store, clock: Clock) -> list[Notification]:
    """The outbox after two red warnings of CH-001."""
    intake = Intake(store, CFG, clock)
    for subject in SUBJECTS:
        assert intake.event(red(subject, clock))
    return outbox(store)


@pytest.fixture
def processes(store: Store) -> Iterator[list[Store]]:
    """Two stores on the module's database: one per simulated process."""
    stores = [Store(store.url, migrate=False) for _ in range(2)]
    try:
        yield stores
    finally:
        for s in stores:
            s.engine.dispose()


def outbox(store: Store) -> list[Notification]:
    with store.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def messages(fake: FakeTwilioServer) -> list[dict]:
    return httpx.get(f"{fake.url}/_fake/messages", trust_env=False).json()["messages"]


def dispatcher(store: Store, sms: object, clock: Clock, owner: str,
               broadcasts: list[tuple[str, bytes]]) -> Dispatcher:
    """One process's dispatcher; ``sms`` is the channel or one of the wrappers above."""
    return Dispatcher(store, CFG, cast(SmsChannel, sms), clock=clock, claims=Claims(store, owner, LEASE_S),
                      publish_cap=lambda zone, xml: broadcasts.append((zone, xml)))


def settled(store: Store) -> bool:
    return all(r.status in ("sent", "suppressed", "failed") for r in outbox(store))


def assert_each_sent_once(store: Store, fake: FakeTwilioServer) -> list[dict]:
    sms = messages(fake)
    assert not [k for k, n in Counter((m["to"], m["body"]) for m in sms).items() if n > 1], "an SMS went out twice"
    sent = [r for r in outbox(store) if r.channel == "sms" and r.status == "sent"]
    assert {m["sid"] for m in sms} == {r.provider_id for r in sent}, "the outbox and the provider agree"
    return sms


def test_two_dispatchers_send_every_notice_once(store: Store, processes: list[Store], planned: list[Notification],
                                                fake: FakeTwilioServer, channel: SmsChannel, clock: Clock) -> None:
    # every create is answered after 0.2 s: sends are in flight while the other process works
    httpx.post(f"{fake.url}/_fake/fail", json={"mode": "timeout", "count": 100, "delay_s": 0.2},
               trust_env=False).raise_for_status()
    broadcasts: list[tuple[str, bytes]] = []
    dispatchers = [dispatcher(s, channel, clock, f"p{n}", broadcasts) for n, s in enumerate(processes)]
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run(d: Dispatcher) -> None:
        try:
            start.wait(10)
            deadline = time.monotonic() + 60
            while not settled(d.store) and time.monotonic() < deadline:
                d.run_once()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    rows = outbox(store)
    assert settled(store), Counter(r.status for r in rows)
    sms_rows = [r for r in rows if r.channel == "sms"]
    assert {r.status for r in sms_rows} == {"sent"}
    sms = assert_each_sent_once(store, fake)
    assert {m["to"] for m in sms} == {r.recipient for r in sms_rows}
    assert len(sms) == len({r.group_key for r in sms_rows}) == 7, "one SMS per recipient, both warnings in it"
    # one loudspeaker Alert per zone: the second episode's is covered by the first
    assert sorted(zone for zone, _ in broadcasts) == ["Z-LINGANG-EAST", "Z-LINGANG-SCHOOL"]
    assert all(r.claimed_by is None and r.claimed_until is None for r in rows), "no lease left behind"


@pytest.mark.parametrize("reached", [True, False], ids=["provider-has-it", "provider-never-got-it"])
def test_a_send_in_flight_when_its_process_dies_is_reconciled_after_the_lease(
        store: Store, processes: list[Store], planned: list[Notification], fake: FakeTwilioServer,
        channel: SmsChannel, clock: Clock, reached: bool) -> None:
    broadcasts: list[tuple[str, bytes]] = []
    dying = dispatcher(processes[0], DyingChannel(channel, reached=reached), clock, "dies", broadcasts)
    survivor = dispatcher(processes[1], channel, clock, "survives", broadcasts)
    with pytest.raises(Crash):
        dying.run_once()
    in_flight = [r for r in outbox(store) if r.status == "sending"]  # one SMS carrying both warnings
    assert len(in_flight) == 2 and {(r.claimed_by, r.recipient, r.body) for r in in_flight} == {
        ("dies", in_flight[0].recipient, in_flight[0].body)}
    ids, recipient = {r.id for r in in_flight}, in_flight[0].recipient
    assert len(messages(fake)) == int(reached)

    # while the lease lasts the survivor sends everything else, but not the rows in flight
    for _ in range(3):
        survivor.run_once()
    rows = outbox(store)
    assert {r.id for r in rows if r.status not in ("sent", "suppressed")} == ids
    assert {r.status for r in rows if r.id in ids} == {"sending"}
    assert [m["to"] for m in messages(fake)].count(recipient) == int(reached)

    # the lease runs out: reconciled with the provider, then sent only if the provider lacks it
    clock.shift = dt.timedelta(seconds=LEASE_S + 1)
    deadline = time.monotonic() + 30
    while not settled(store) and time.monotonic() < deadline:
        survivor.run_once()
    after = [r for r in outbox(store) if r.id in ids]
    sms = assert_each_sent_once(store, fake)
    to_it = [m for m in sms if m["to"] == recipient]
    assert len(to_it) == 1 and to_it[0]["body"] == in_flight[0].body
    assert {(r.status, r.provider_id) for r in after} == {("sent", to_it[0]["sid"])}
    # reconciled (one attempt) when the provider had it; sent again (a second) when it had not
    assert {r.attempts for r in after} == {1 if reached else 2}


def test_a_slow_send_is_not_taken_over_while_its_lease_lasts(
        store: Store, processes: list[Store], planned: list[Notification], fake: FakeTwilioServer,
        channel: SmsChannel, clock: Clock) -> None:
    """The first process is alive but its create call has not reached the provider yet: had the
    second reconciled the row now, the provider would have had nothing and it would go twice."""
    broadcasts: list[tuple[str, bytes]] = []
    slow_channel = SlowChannel(channel)
    slow = dispatcher(processes[0], slow_channel, clock, "slow", broadcasts)
    other = dispatcher(processes[1], channel, clock, "other", broadcasts)
    first_pass = threading.Thread(target=slow.run_once)
    first_pass.start()
    try:
        assert slow_channel.entered.wait(30)
        in_flight = [r for r in outbox(store) if r.status == "sending"]
        ids, recipient = {r.id for r in in_flight}, in_flight[0].recipient
        assert {r.claimed_by for r in in_flight} == {"slow"}
        other.recover()  # a process starting now, and its passes, leave the live lease alone
        for _ in range(3):
            other.run_once()
        rows = outbox(store)
        assert {r.id for r in rows if r.status not in ("sent", "suppressed")} == ids, "all else went out"
        assert {r.status for r in rows if r.id in ids} == {"sending"}
        assert recipient not in {m["to"] for m in messages(fake)}
    finally:
        slow_channel.go.set()
        first_pass.join(30)
    assert settled(store)
    sms = assert_each_sent_once(store, fake)
    assert len(sms) == 7
    assert {(r.status, r.attempts, r.claimed_by) for r in outbox(store) if r.id in ids} == {("sent", 1, None)}


def test_an_error_after_the_create_call_leaves_the_send_to_reconciliation(
        store: Store, planned: list[Notification], fake: FakeTwilioServer, channel: SmsChannel,
        clock: Clock) -> None:
    """Any exception in a send is retried through reconciliation: the rows marked ``sending``
    become ``unknown``, never ``pending`` (which would send them again unasked)."""
    one = dispatcher(store, FailingChannel(channel), clock, "one", [])
    one.run_once()
    failed = [r for r in outbox(store) if r.status not in ("sent", "suppressed")]
    assert {(r.status, r.error) for r in failed} == {("unknown", "RuntimeError('bug after the create call')")}
    [message] = [m for m in messages(fake) if m["to"] == failed[0].recipient]
    clock.shift = dt.timedelta(minutes=2)  # past the backoff
    deadline = time.monotonic() + 30
    while not settled(store) and time.monotonic() < deadline:
        one.run_once()
    sms = assert_each_sent_once(store, fake)
    assert len(sms) == 7
    assert {(r.status, r.provider_id, r.attempts) for r in outbox(store) if r.id in {f.id for f in failed}} == {
        ("sent", message["sid"], 1)}
