"""sms-tencent: the official Tencent Cloud SMS SDK, through TencentSms, against the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from alerts.channels.base import Message
from alerts.channels.sms_tencent import TencentSms
from alerts.fakes import tencent_sms
from alerts.fakes.server import FakeServer
from config.channels import ChannelsSettings, TencentSmsSettings, with_env
from hazwatch.runtime import free_port
from tests.alerts.channel_fakes import accepted, deliver, fail, reset

TO = "+8613800000001"
TEMPLATES = [
    {"levels": ["red"], "id": "2000001", "params": ["site", "level", "value"]},
    {"id": "2000002", "params": ["site", "level"]},
]
FIELDS = {"site": "夏河尾矿库", "level": "红色", "value": "0.618m"}


def red(key: str = "k-red", to: str = TO) -> Message:
    return Message(to, "【hazwatch】夏河尾矿库红色预警", key=key, level="red", kind="raised", fields=FIELDS)


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeServer]:
    with tencent_sms.server() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeServer:
    return reset(fake_server)


def settings(endpoint: str) -> TencentSmsSettings:
    return TencentSmsSettings.model_validate({
        "secret_id": "AKID-fake", "secret_key": "fake-key", "sms_sdk_app_id": "1400006666",
        "sign_name": "应急管理", "endpoint": endpoint, "templates": TEMPLATES})


@pytest.fixture
def channel(fake: FakeServer) -> TencentSms:
    return TencentSms(settings(fake.url), timeout_s=1.0)


def test_send_fills_the_approved_template(fake: FakeServer, channel: TencentSms):
    outcome = channel.send(red())
    assert outcome.status == "sent" and outcome.provider_id
    [got] = accepted(fake)
    assert got["serial_no"] == outcome.provider_id and got["to"] == TO
    assert (got["sdk_app_id"], got["sign_name"], got["template_id"]) == ("1400006666", "应急管理", "2000001")
    assert got["template_params"] == ["夏河尾矿库", "红色", "0.618m"]
    assert got["session_context"] == "k-red"


def test_template_follows_the_level(fake: FakeServer, channel: TencentSms):
    orange = Message(TO, "text", key="k-o", level="orange", kind="raised", fields=FIELDS)
    assert channel.send(orange).status == "sent"
    assert accepted(fake)[0]["template_id"] == "2000002"


@pytest.mark.parametrize(("mode", "status", "code", "after"), [
    ("rate-limit", "retry", "LimitExceeded.PhoneNumberDailyLimit", 3600.0),
    ("invalid-number", "failed", "InvalidParameterValue.IncorrectPhoneNumber", None),
    ("invalid-template", "failed", "FailedOperation.TemplateIncorrectOrUnapproved", None),
])
def test_refusals_map_to_outcomes_and_send_nothing(fake: FakeServer, channel: TencentSms,
                                                   mode: str, status: str, code: str, after: float | None):
    fail(fake, mode)
    outcome = channel.send(red())
    assert (outcome.status, outcome.error_code, outcome.retry_after_s) == (status, code, after)
    assert accepted(fake) == []


def test_a_number_tencent_rejects_fails(fake: FakeServer, channel: TencentSms):
    assert channel.send(red(to="+86123")).status == "failed"


def test_5xx_that_sent_nothing_is_unknown_then_sent_once(fake: FakeServer, channel: TencentSms):
    # the SDK hides the HTTP status: a 503 looks like a 500, so it is looked up before resending
    since = datetime.now(UTC) - timedelta(minutes=1)
    fail(fake, "503")
    settled, seen = deliver(channel, red(key="k-503"), since)
    assert [o.status for o in seen] == ["unknown", "sent"] and settled.status == "sent"
    assert [m["session_context"] for m in accepted(fake)] == ["k-503"]


@pytest.mark.parametrize("mode", ["500", "timeout", "drop"])
def test_crash_in_flight_is_unknown_and_resolved_without_a_second_sms(
        fake: FakeServer, channel: TencentSms, mode: str):
    since = datetime.now(UTC) - timedelta(minutes=1)
    fail(fake, mode, delay_s=3)
    settled, seen = deliver(channel, red(key=f"k-{mode}"), since)
    assert [o.status for o in seen] == ["unknown"]
    assert settled.status == "sent"
    [got] = accepted(fake)  # exactly one SMS, found by its receipt's SessionContext
    assert settled.provider_id == got["serial_no"] and got["session_context"] == f"k-{mode}"


def test_connection_refused_is_retryable():
    channel = TencentSms(settings(f"http://127.0.0.1:{free_port()}"), timeout_s=1.0)
    assert channel.send(red()).status == "retry"


def test_secrets_come_from_the_environment(fake: FakeServer):
    configured = ChannelsSettings.model_validate({"sms_tencent": {
        "sms_sdk_app_id": "1400006666", "sign_name": "应急管理", "templates": TEMPLATES}})
    env = {"TENCENTCLOUD_SECRET_ID": "AKID-env", "TENCENTCLOUD_SECRET_KEY": "k",
           "HAZWATCH_TENCENT_SMS_ENDPOINT": fake.url}
    resolved = with_env(configured, env).sms_tencent
    assert resolved is not None and resolved.secret_id == "AKID-env"
    assert TencentSms(resolved, timeout_s=1.0).send(red()).status == "sent"
