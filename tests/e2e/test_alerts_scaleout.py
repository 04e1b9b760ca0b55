"""Two alerts processes on one PostgreSQL database: one is SIGKILLed while its SMS is in flight,
and every recipient still gets exactly one SMS per notice: the other process goes on sending the
rest, and reconciles the one in flight with the provider once its lease ran out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from alerts.store import Episode, Notification, Store
from hazwatch.runtime import free_port
from sensors.scenario import load_scenario
from sensors.simulator import plan
from tests.e2e.conftest import ROOT, Pipeline, expected_sequences, wait_until

OPERATORS = ("+8613800000001", "+8613800000002")


@pytest.fixture
def service_env(postgres_env: dict[str, str]) -> dict[str, str]:
    return postgres_env  # the alerts processes share one PostgreSQL outbox


@pytest.fixture
def store(pipeline: Pipeline) -> Iterator[Store]:
    db = pipeline.store()
    try:
        yield db
    finally:
        db.engine.dispose()


def outbox(store: Store) -> list[Notification]:
    with store.session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def test_two_alerts_processes_send_each_sms_once_when_one_dies_mid_send(
        pipeline: Pipeline, store: Store) -> None:
    expected = expected_sequences(ROOT / "sensors" / "scenarios" / "chemical.yaml")
    pipeline.start("alerts-2", "alerts", env={"HAZWATCH_ALERTS_HTTP_PORT": str(free_port())})
    alerts = {name: pipeline.procs[name] for name in ("alerts", "alerts-2")}
    by_pid = {str(p.pid): name for name, p in alerts.items()}

    # the provider takes the first message but does not answer: its sender is inside the create
    # call, with the rows "sending" under its lease, and the provider already has the message
    httpx.post(f"{pipeline.twilio_url}/_fake/fail", json={"mode": "timeout", "count": 1, "delay_s": 120})
    pipeline.publish(plan(pipeline.config, load_scenario("chemical"), seed=3))

    def in_flight() -> list[Notification]:
        """The rows of the first message the provider took, while their sender still waits."""
        sms = pipeline.sms()
        if not sms:
            return []
        return [r for r in outbox(store) if r.status == "sending" and (r.recipient, r.body) == (
            sms[0]["to"], sms[0]["body"])]

    hung = wait_until(in_flight, 120, "a send in flight")
    assert isinstance(hung, list)
    owners = {r.claimed_by for r in hung}
    assert len(owners) == 1, owners
    owner = owners.pop()
    assert owner is not None and owner.split(":")[1] in by_pid, owner
    victim = by_pid[owner.split(":")[1]]
    pipeline.procs.pop(victim).kill()  # SIGKILL mid-send
    survivor = next(p for name, p in alerts.items() if name != victim)
    hung_ids = {r.id for r in hung}
    rows = outbox(store)
    assert {r.status for r in rows if r.id in hung_ids} == {"sending"}, "killed while in flight"
    assert [r.id for r in rows if r.claimed_by == owner and r.id not in hung_ids] == [], \
        "the process held nothing but what it was sending"

    seen: dict[str, list] = {}

    def settled() -> bool:
        """Every expected episode cleared, nothing left to send, no SMS accepted meanwhile."""
        assert survivor.alive(), survivor.log_tail()
        before = pipeline.sms()
        with store.session() as s:
            cleared = set(s.scalars(select(Episode.subject).where(Episode.state == "cleared")))
        seen.update(rows=outbox(store), sms=pipeline.sms())
        return (cleared >= set(expected) and len(seen["sms"]) == len(before)
                and all(r.status in ("sent", "suppressed", "failed") for r in seen["rows"]))

    # generous: the lease (2 x sms_timeout_s + 20 s = 40 s) must run out on a loaded machine
    wait_until(settled, 300, "the outbox to settle after the SIGKILL")
    rows, sms = seen["rows"], seen["sms"]
    sms_rows = [r for r in rows if r.channel == "sms"]
    sent = [r for r in sms_rows if r.status == "sent"]
    assert [r for r in sms_rows if r.status == "failed"] == []
    assert max(Counter((m["to"], m["body"]) for m in sms).values()) == 1, "an SMS went out twice"
    assert {m["sid"] for m in sms} == {r.provider_id for r in sent}, "the outbox and the provider agree"
    assert {(m["to"], m["body"]) for m in sms} == {(r.recipient, r.body) for r in sent}
    assert max(Counter((r.episode, r.level, r.recipient) for r in sent).values()) == 1
    # the message in flight was reconciled (one attempt, the provider's sid), not sent again
    hung_sid = sms[0]["sid"]
    assert {(r.status, r.provider_id, r.attempts) for r in rows if r.id in hung_ids} == {("sent", hung_sid, 1)}
    # and the scenario went through: every operator heard every subject's all-clear
    episodes = {r.episode for r in sent if r.kind == "cleared" and r.recipient in OPERATORS}
    assert len(episodes) == len(expected)
    for op in OPERATORS:
        assert {r.episode for r in sent if r.kind == "cleared" and r.recipient == op} == episodes
