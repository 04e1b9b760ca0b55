"""sms-aliyun: the official Alibaba Cloud SMS SDK, through AliyunSms, against the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from alerts.channels.base import Message
from alerts.channels.sms_aliyun import AliyunSms
from alerts.fakes import aliyun_sms
from alerts.fakes.server import FakeServer
from config.channels import AliyunSmsSettings, ChannelConfigError, ChannelsSettings, with_env
from hazwatch.runtime import free_port
from tests.alerts.channel_fakes import accepted, deliver, fail, reset

TO = "+8613800000001"
TEMPLATES = [
    {"levels": ["red"], "kinds": ["raised", "escalated"], "code": "SMS_100000001",
     "params": {"site": "site", "level": "level", "value": "value", "time": "time"}},
    {"code": "SMS_100000002", "params": {"site": "site", "level": "level"}},
]
FIELDS = {"site": "石桥沟雨量站", "level": "红色", "value": "81.6mm", "time": "11月23日10:45"}


def red(key: str = "k-red", to: str = TO, **fields: str) -> Message:
    return Message(to, "【hazwatch】石桥沟雨量站红色预警", key=key, level="red", kind="raised",
                   fields={**FIELDS, **fields})


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeServer]:
    with aliyun_sms.server() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeServer:
    return reset(fake_server)


def settings(endpoint: str, **extra: object) -> AliyunSmsSettings:
    return AliyunSmsSettings.model_validate({
        "access_key_id": "LTAI-fake", "access_key_secret": "fake-secret", "sign_name": "应急管理",
        "endpoint": endpoint, "templates": TEMPLATES, **extra})


@pytest.fixture
def channel(fake: FakeServer) -> AliyunSms:
    return AliyunSms(settings(fake.url), timeout_s=1.0)


def test_send_fills_the_approved_template(fake: FakeServer, channel: AliyunSms):
    outcome = channel.send(red())
    assert outcome.status == "sent" and outcome.provider_id
    [got] = accepted(fake)
    assert got["biz_id"] == outcome.provider_id
    assert got["to"] == "13800000001"  # Aliyun's form of a mainland number
    assert got["sign_name"] == "应急管理" and got["template_code"] == "SMS_100000001"
    assert got["template_param"] == FIELDS and got["out_id"] == "k-red"


def test_template_follows_level_and_kind(fake: FakeServer, channel: AliyunSms):
    yellow = Message(TO, "text", key="k-y", level="yellow", kind="raised", fields=FIELDS)
    assert channel.send(yellow).status == "sent"
    [got] = accepted(fake)
    assert got["template_code"] == "SMS_100000002"
    assert got["template_param"] == {"site": "石桥沟雨量站", "level": "红色"}


def test_long_parameters_are_cut_to_the_variable_limit(fake: FakeServer):
    channel = AliyunSms(settings(fake.url, max_param_chars=6), timeout_s=1.0)
    assert channel.send(red(site="一二三四五六七八九十")).status == "sent"
    assert accepted(fake)[0]["template_param"]["site"] == "一二三四五…"


def test_a_field_the_template_needs_but_the_message_lacks_fails_without_sending(
        fake: FakeServer, channel: AliyunSms):
    outcome = channel.send(Message(TO, "text", key="k", level="red", kind="raised", fields={"site": "x"}))
    assert outcome.status == "failed" and outcome.error_code == "template-field"
    assert accepted(fake) == []


@pytest.mark.parametrize(("mode", "status", "code", "after"), [
    ("rate-limit", "retry", "isv.BUSINESS_LIMIT_CONTROL", 60.0),
    ("invalid-number", "failed", "isv.MOBILE_NUMBER_ILLEGAL", None),
    ("invalid-template", "failed", "isv.SMS_TEMPLATE_ILLEGAL", None),
    ("503", "retry", "ServiceUnavailable", None),
])
def test_refusals_map_to_outcomes_and_send_nothing(fake: FakeServer, channel: AliyunSms,
                                                   mode: str, status: str, code: str, after: float | None):
    fail(fake, mode)
    outcome = channel.send(red())
    assert (outcome.status, outcome.error_code, outcome.retry_after_s) == (status, code, after)
    assert accepted(fake) == []


def test_a_number_aliyun_rejects_fails(fake: FakeServer, channel: AliyunSms):
    assert channel.send(red(to="+86123")).status == "failed"


@pytest.mark.parametrize("mode", ["500", "timeout", "drop"])
def test_crash_in_flight_is_unknown_and_resolved_without_a_second_sms(
        fake: FakeServer, channel: AliyunSms, mode: str):
    since = datetime.now(UTC) - timedelta(minutes=1)
    fail(fake, mode, delay_s=3)
    settled, seen = deliver(channel, red(key=f"k-{mode}"), since)
    assert [o.status for o in seen] == ["unknown"]
    assert settled.status == "sent" and settled.provider_id == f"OutId:k-{mode}"
    assert [m["out_id"] for m in accepted(fake)] == [f"k-{mode}"]  # exactly one SMS


def test_unknown_that_never_arrived_is_sent_again_once(fake: FakeServer, channel: AliyunSms):
    since = datetime.now(UTC) - timedelta(minutes=1)
    fail(fake, "500")
    channel.send(red(key="k-other"))  # an unknown of another message: the look-up must not take it
    assert channel.find_sent(red(key="k-mine"), since) is None
    settled, _ = deliver(channel, red(key="k-mine"), since)
    assert settled.status == "sent"
    assert [m["out_id"] for m in accepted(fake)] == ["k-other", "k-mine"]


def test_connection_refused_is_retryable():
    channel = AliyunSms(settings(f"http://127.0.0.1:{free_port()}"), timeout_s=1.0)
    assert channel.send(red()).status == "retry"


def test_secrets_come_from_the_environment_and_files(fake: FakeServer, tmp_path: Path):
    secret = tmp_path / "aliyun_secret"
    secret.write_text("from-a-file\n")
    configured = ChannelsSettings.model_validate({"sms_aliyun": {
        "sign_name": "应急管理", "endpoint": "dysmsapi.aliyuncs.com", "templates": TEMPLATES}})
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-env", "ALIBABA_CLOUD_ACCESS_KEY_SECRET_FILE": str(secret),
           "HAZWATCH_ALIYUN_SMS_ENDPOINT": fake.url}
    resolved = with_env(configured, env).sms_aliyun
    assert resolved is not None and resolved.access_key_id == "LTAI-env"
    assert resolved.access_key_secret is not None
    assert resolved.access_key_secret.get_secret_value() == "from-a-file"
    assert AliyunSms(resolved, timeout_s=1.0).send(red()).status == "sent"
    with pytest.raises(ChannelConfigError, match="both set"):
        with_env(configured, {**env, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "x"})
    with pytest.raises(ChannelConfigError, match="access_key_secret"):
        AliyunSms(with_env(configured, {}).sms_aliyun)  # type: ignore[arg-type]


def test_templates_must_end_with_one_for_everything():
    with pytest.raises(ValueError, match="last template"):
        AliyunSmsSettings.model_validate({"sign_name": "应急管理", "templates": TEMPLATES[:1]})
    AliyunSmsSettings.model_validate({"sign_name": "应急管理", "templates": TEMPLATES[1:]})


def test_the_control_api_takes_only_the_shared_fail_modes(fake: FakeServer, channel: AliyunSms):
    """Twilio's own modes (``20429``) are refused with 422 and queue nothing; a rule aimed at
    another number (as Aliyun receives it) leaves this one alone."""

    response = httpx.post(fake.url + "/_fake/fail", json={"mode": "20429"}, trust_env=False)
    assert response.status_code == 422 and "rate-limit" in response.text
    fail(fake, "invalid-number", to="13800000002")
    assert channel.send(red(key="k-1")).status == "sent"
    assert channel.send(red(key="k-2", to="+8613800000002")).status == "failed"
    assert channel.send(red(key="k-3", to="+8613800000002")).status == "sent"
