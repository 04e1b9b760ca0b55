"""Crash the alerts service between "recorded in the outbox" and "sent": every recipient still
gets exactly one SMS per notice."""

from __future__ import annotations

from collections import Counter

import httpx
from sqlalchemy import func, select

from alerts.store import Episode, Notification
from sensors.scenario import load_scenario
from sensors.simulator import plan
from tests.e2e.conftest import ROOT, Pipeline, expected_sequences, wait_until


def rows(pipeline: Pipeline) -> list[Notification]:
    with pipeline.store().session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def test_alerts_sigkill_while_sending_sends_each_sms_once(pipeline: Pipeline) -> None:
    expected = expected_sequences(ROOT / "sensors" / "scenarios" / "chemical.yaml")
    # the provider accepts the first message but does not answer: alerts is inside the create
    # call, its row is "sending", and the provider already has the message
    httpx.post(f"{pipeline.twilio_url}/_fake/fail", json={"mode": "timeout", "count": 1, "delay_s": 120})
    pipeline.publish(plan(pipeline.config, load_scenario("chemical"), seed=3))

    def hung() -> bool:
        return len(pipeline.sms()) >= 1 and any(r.status == "sending" for r in rows(pipeline))

    wait_until(hung, 90, "a send in flight")
    pipeline.restart("alerts")  # SIGKILL, then a fresh process on the same database

    def settled() -> bool:
        with pipeline.store().session() as s:
            cleared = s.scalar(select(func.count()).select_from(Episode).where(Episode.state == "cleared"))
        return cleared == len(expected) and all(r.status in ("sent", "suppressed", "failed") for r in rows(pipeline))

    wait_until(settled, 120, "the outbox to settle after the restart")
    sms = pipeline.sms()
    assert len({(m["to"], m["body"]) for m in sms}) == len(sms), "an SMS went out twice"
    sent = [r for r in rows(pipeline) if r.channel == "sms" and r.status == "sent"]
    assert {m["sid"] for m in sms} == {r.provider_id for r in sent}, "the outbox and the provider agree"
    assert max(Counter((r.episode, r.level, r.recipient) for r in sent).values()) == 1
    hung_sid = sms[0]["sid"]
    assert any(r.provider_id == hung_sid for r in sent), "the in-flight message was reconciled, not resent"
