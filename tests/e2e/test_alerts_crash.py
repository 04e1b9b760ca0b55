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


# -- the same for the Chinese SMS providers (sms-aliyun, sms-tencent), against their fakes ----------

def _routes(channel: str) -> list[dict]:
    return [
        {"name": "centre", "audiences": ["operators"], "channels": [channel]},
        {"name": "enterprise", "match": {"levels": ["yellow", "orange", "red"]}, "audiences": ["officers"],
         "channels": [channel]},
        {"name": "county-red", "match": {"levels": ["red"]}, "audiences": ["regulators:county"], "channels": [channel]},
        {"name": "residents-red", "match": {"levels": ["red"]}, "audiences": ["residents"], "channels": [channel, "cap"]},
    ]


def _provider_settings(channel: str, section: dict) -> dict:
    """The example routed to ``channel``; its account and endpoint come from the environment."""
    patch = copy.deepcopy(E2E_SETTINGS)
    patch["routing"]["rules"] = _routes(channel)
    patch["notify"]["channels"] = {"timeout_s": 60, **section}
    return patch


PROVIDERS = {
    "sms-aliyun": {
        "settings": _provider_settings("sms-aliyun", {"sms_aliyun": {"sign_name": "应急管理", "templates": [
            {"code": "SMS_465320213", "params": {"site": "site", "event": "event", "level": "level"}}]}}),
        "fake": "fake-aliyun-sms",
        "env": lambda url: {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-e2e", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "e2e-secret",
                            "HAZWATCH_ALIYUN_SMS_ENDPOINT": url},
        "key": "out_id",
        # a send answers with the BizId; a lookup after the crash finds the message by its OutId
        "ids": lambda m: {m["biz_id"], f"OutId:{m['out_id']}"},
        "looked_up": lambda m: {f"OutId:{m['out_id']}"},
    },
    "sms-tencent": {
        "settings": _provider_settings("sms-tencent", {"sms_tencent": {
            "sms_sdk_app_id": "1400006666", "sign_name": "应急管理", "templates": [
                {"id": "1110", "params": ["site", "event", "level"]}]}}),
        "fake": "fake-tencent-sms",
        "env": lambda url: {"TENCENTCLOUD_SECRET_ID": "AKID-e2e", "TENCENTCLOUD_SECRET_KEY": "e2e-secret",
                            "HAZWATCH_TENCENT_SMS_ENDPOINT": url},
        "key": "session_context",
        # a send answers with the SerialNo; so does a lookup (the delivery receipt's)
        "ids": lambda m: {m["serial_no"]},
        "looked_up": lambda m: {m["serial_no"]},
    },
}


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> dict:
    return PROVIDERS[request.param]


@pytest.fixture
def provider_fake(provider: dict) -> Iterator[str]:
    """``hazwatch channels fake <channel>`` in its own process; its URL."""
    channel = next(name for name, p in PROVIDERS.items() if p is provider)
    process = subprocess.Popen([sys.executable, "-m", "hazwatch", "channels", "fake", channel, "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(rf"{provider['fake']} listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        yield match.group(1)
    finally:
        process.kill()  # it holds a "timeout" answer, and nothing worth a clean stop
        process.wait(timeout=10)


@pytest.fixture
def settings_patch(request: pytest.FixtureRequest) -> dict:
    if "provider" not in request.fixturenames:
        return E2E_SETTINGS
    settings: dict = request.getfixturevalue("provider")["settings"]
    return settings


@pytest.fixture
def service_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """For a test with a provider's fake: its account and endpoint reach the services through the
    environment, as in docker-compose (the loader applies them: config.channels.channel_env)."""
    if "provider_fake" not in request.fixturenames:
        return {}
    env: dict[str, str] = request.getfixturevalue("provider")["env"](request.getfixturevalue("provider_fake"))
    return env


@pytest.mark.parametrize("provider", list(PROVIDERS), indirect=True)
def test_alerts_sigkill_while_sending_by_a_chinese_provider_sends_each_sms_once(
        provider: dict, provider_fake: str, pipeline: Pipeline) -> None:
    channel = next(name for name, p in PROVIDERS.items() if p is provider)

    def accepted() -> list[dict]:
        messages: list[dict] = httpx.get(f"{provider_fake}/_fake/messages").json()["messages"]
        return messages

    expected = expected_sequences(ROOT / "sensors" / "scenarios" / "chemical.yaml")
    # the provider takes the first message but does not answer: alerts is inside SendSms, its row
    # is "sending", and the provider already has the message
    httpx.post(f"{provider_fake}/_fake/fail", json={"mode": "timeout", "count": 1, "delay_s": 120})
    pipeline.publish(plan(pipeline.config, load_scenario("chemical"), seed=3))

    def hung() -> bool:
        return len(accepted()) >= 1 and any(r.channel == channel and r.status == "sending" for r in rows(pipeline))

    wait_until(hung, 90, f"an {channel} send in flight")
    pipeline.restart("alerts")  # SIGKILL, then a fresh process on the same database

    def settled() -> bool:
        with pipeline.store().session() as s:
            cleared = s.scalar(select(func.count()).select_from(Episode).where(Episode.state == "cleared"))
        return cleared == len(expected) and all(r.status in ("sent", "suppressed", "failed") for r in rows(pipeline))

    wait_until(settled, 150, "the outbox to settle after the restart")
    taken = accepted()
    keys = [m[provider["key"]] for m in taken]
    assert len(set(keys)) == len(keys), "an SMS went out twice"
    sent = [r for r in rows(pipeline) if r.channel == channel and r.status == "sent"]
    assert sent and not [r for r in rows(pipeline) if r.channel == channel and r.status == "failed"]
    ids = set().union(*(provider["ids"](m) for m in taken))
    assert {r.provider_id for r in sent} <= ids, "the outbox and the provider agree"
    assert len({r.provider_id for r in sent}) == len(taken), f"every SMS {channel} took is in the outbox, once"
    assert max(Counter((r.episode, r.level, r.recipient) for r in sent).values()) == 1
    assert any(r.provider_id in provider["looked_up"](taken[0]) for r in sent), \
        "the in-flight SMS was looked up, not resent"
    assert not pipeline.sms(), "nothing went by Twilio"
