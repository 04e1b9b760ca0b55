"""Crash the alerts service between "recorded in the outbox" and "sent": every recipient still
gets exactly one SMS per notice, by Twilio and by Alibaba Cloud SMS (each against its fake)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from alerts.store import Episode, Notification
from sensors.scenario import load_scenario
from sensors.simulator import plan
from tests.e2e.conftest import E2E_SETTINGS, ROOT, Pipeline, expected_sequences, wait_until


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


# -- the same for Alibaba Cloud SMS (sms-aliyun), against its fake ---------------------------------
ALIYUN_RULES = [
    {"name": "centre", "audiences": ["operators"], "channels": ["sms-aliyun"]},
    {"name": "enterprise", "match": {"levels": ["yellow", "orange", "red"]}, "audiences": ["officers"],
     "channels": ["sms-aliyun"]},
    {"name": "county-red", "match": {"levels": ["red"]}, "audiences": ["regulators:county"], "channels": ["sms-aliyun"]},
    {"name": "residents-red", "match": {"levels": ["red"]}, "audiences": ["residents"], "channels": ["sms-aliyun", "cap"]},
]


@pytest.fixture
def aliyun_fake() -> Iterator[str]:
    """``hazwatch channels fake sms-aliyun`` in its own process; its URL."""
    process = subprocess.Popen([sys.executable, "-m", "hazwatch", "channels", "fake", "sms-aliyun", "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"fake-aliyun-sms listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        yield match.group(1)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a held "timeout" answer
            process.kill()
            process.wait(timeout=5)


def _aliyun_settings() -> dict:
    """The example routed to sms-aliyun; its account and endpoint come from the environment."""
    patch = copy.deepcopy(E2E_SETTINGS)
    patch["routing"]["rules"] = ALIYUN_RULES
    patch["notify"]["channels"] = {"timeout_s": 60, "sms_aliyun": {"sign_name": "应急管理", "templates": [
        {"code": "SMS_465320213", "params": {"site": "site", "event": "event", "level": "level"}}]}}
    return patch


@pytest.fixture
def service_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """For a test with the Aliyun fake: its account and endpoint reach the services through the
    environment, as in docker-compose (the loader applies them: config.channels.channel_env)."""
    if "aliyun_fake" not in request.fixturenames:
        return {}
    return {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-e2e", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "e2e-secret",
            "HAZWATCH_ALIYUN_SMS_ENDPOINT": request.getfixturevalue("aliyun_fake")}


@pytest.mark.parametrize("settings_patch", [_aliyun_settings()])
def test_alerts_sigkill_while_sending_by_aliyun_sends_each_sms_once(aliyun_fake: str, pipeline: Pipeline) -> None:
    def accepted() -> list[dict]:
        return httpx.get(f"{aliyun_fake}/_fake/messages").json()["messages"]

    expected = expected_sequences(ROOT / "sensors" / "scenarios" / "chemical.yaml")
    # Aliyun takes the first message but does not answer: alerts is inside SendSms, its row is
    # "sending", and Aliyun already has the message
    httpx.post(f"{aliyun_fake}/_fake/fail", json={"mode": "timeout", "count": 1, "delay_s": 120})
    pipeline.publish(plan(pipeline.config, load_scenario("chemical"), seed=3))

    def hung() -> bool:
        return len(accepted()) >= 1 and any(r.channel == "sms-aliyun" and r.status == "sending"
                                            for r in rows(pipeline))

    wait_until(hung, 90, "an Aliyun send in flight")
    pipeline.restart("alerts")  # SIGKILL, then a fresh process on the same database

    def settled() -> bool:
        with pipeline.store().session() as s:
            cleared = s.scalar(select(func.count()).select_from(Episode).where(Episode.state == "cleared"))
        return cleared == len(expected) and all(r.status in ("sent", "suppressed", "failed") for r in rows(pipeline))

    wait_until(settled, 150, "the outbox to settle after the restart")
    taken = accepted()
    keys = [m["out_id"] for m in taken]
    assert len(set(keys)) == len(keys), "an SMS went out twice"
    sent = [r for r in rows(pipeline) if r.channel == "sms-aliyun" and r.status == "sent"]
    assert sent and not [r for r in rows(pipeline) if r.channel == "sms-aliyun" and r.status == "failed"]
    ids = {m["biz_id"] for m in taken} | {f"OutId:{k}" for k in keys}
    assert {r.provider_id for r in sent} <= ids, "the outbox and the provider agree"
    assert len({r.provider_id for r in sent}) == len(taken), "every SMS Aliyun took is in the outbox, once"
    assert max(Counter((r.episode, r.level, r.recipient) for r in sent).values()) == 1
    assert any(r.provider_id == f"OutId:{keys[0]}" for r in sent), "the in-flight SMS was looked up, not resent"
    assert not pipeline.sms(), "nothing went by Twilio"
