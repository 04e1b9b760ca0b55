"""wecom-robot and dingtalk-robot against their fake webhooks: markdown, DingTalk's signature,
failures onto outcomes, and the crash in flight (posted again: at least once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.channels.base import Message
from alerts.channels.dingtalk_robot import DingtalkRobot, sign
from alerts.channels.wecom_robot import WecomRobot
from alerts.fakes import dingtalk_robot, wecom_robot
from alerts.fakes.server import FakeServer
from config.channels import ChannelsSettings, DingtalkRobotSettings, WecomRobotSettings, with_env
from tests.alerts.channel_fakes import accepted, deliver, fail, reset

TOKEN, SECRET = next(iter(dingtalk_robot.DEFAULT_ROBOTS.items()))
UNSIGNED = "fake-unsigned-token"
MSG = Message("duty", "石桥沟雨量站1小时雨量红色预警：81.6mm（预警值80mm）。", key="k1", level="red",
              kind="raised", title="【红色预警】石桥沟雨量站")


def robot(**extra: Any) -> dict[str, Any]:
    return {"id": "duty", "name": "县应急局值班群", "audiences": ["operators"], **extra}


@pytest.fixture(scope="module")
def wecom_server() -> Iterator[FakeServer]:
    with wecom_robot.server() as server:
        yield server


@pytest.fixture(scope="module")
def dingtalk_server() -> Iterator[FakeServer]:
    with dingtalk_robot.server({TOKEN: SECRET, UNSIGNED: None}) as server:
        yield server


@pytest.fixture
def wecom(wecom_server: FakeServer) -> FakeServer:
    return reset(wecom_server)


@pytest.fixture
def dingtalk(dingtalk_server: FakeServer) -> FakeServer:
    return reset(dingtalk_server)


def wecom_channel(fake: FakeServer, key: str = wecom_robot.DEFAULT_KEY) -> WecomRobot:
    return WecomRobot(WecomRobotSettings(base_url=fake.url, robots=[robot(key=key)]), timeout_s=1.0)


def dingtalk_channel(fake: FakeServer, token: str = TOKEN, secret: str | None = SECRET,
                     **kwargs: Any) -> DingtalkRobot:
    settings = DingtalkRobotSettings(base_url=fake.url, robots=[robot(access_token=token, secret=secret)])
    return DingtalkRobot(settings, timeout_s=1.0, **kwargs)


# -- WeCom ----------------------------------------------------------------------------------------
def test_wecom_posts_markdown(wecom: FakeServer):
    assert wecom_channel(wecom).send(MSG).status == "sent"
    [got] = accepted(wecom)
    assert got["msgtype"] == "markdown"
    assert got["content"] == f"### {MSG.title}\n> {MSG.text}"


def test_wecom_cuts_markdown_to_4096_bytes(wecom: FakeServer):
    long = Message("duty", "预" * 3000, title="t")
    assert wecom_channel(wecom).send(long).status == "sent"
    assert len(accepted(wecom)[0]["content"].encode()) <= 4096


@pytest.mark.parametrize(("mode", "status", "code", "after"), [
    ("rate-limit", "retry", "45009", 60.0),
    ("invalid-template", "failed", "40008", None),
    ("503", "retry", None, None),
])
def test_wecom_refusals(wecom: FakeServer, mode: str, status: str, code: str | None, after: float | None):
    fail(wecom, mode)
    outcome = wecom_channel(wecom).send(MSG)
    assert (outcome.status, outcome.error_code, outcome.retry_after_s) == (status, code, after)
    assert accepted(wecom) == []


def test_wecom_removed_robot_waits_for_a_fix(wecom: FakeServer):
    outcome = wecom_channel(wecom, key="a-removed-key").send(MSG)
    assert (outcome.status, outcome.error_code) == ("retry", "93000")


def test_unknown_robot_id_fails(wecom: FakeServer):
    assert wecom_channel(wecom).send(Message("nobody", "x")).status == "failed"


# -- DingTalk -------------------------------------------------------------------------------------
def test_dingtalk_posts_signed_markdown(dingtalk: FakeServer):
    assert dingtalk_channel(dingtalk).send(MSG).status == "sent"
    [got] = accepted(dingtalk)
    assert got["signed"] and got["title"] == MSG.title
    assert got["text"] == f"### {MSG.title}\n> {MSG.text}"


def test_dingtalk_signature_is_url_encoded(dingtalk: FakeServer):
    # base64 signatures holding '+' or '/' must survive the query string
    now = int(time.time() * 1000)
    for char in "+/":
        stamp = next(t for t in range(now, now - 10_000, -1) if char in sign(t, SECRET))
        assert dingtalk_channel(dingtalk, clock_ms=lambda t=stamp: t).send(MSG).status == "sent"
    assert len(accepted(dingtalk)) == 2


def test_dingtalk_wrong_secret_or_stale_timestamp_is_refused(dingtalk: FakeServer):
    wrong = dingtalk_channel(dingtalk, secret="SECnot-the-secret").send(MSG)
    stale = dingtalk_channel(dingtalk, clock_ms=lambda: int(time.time() * 1000) - 2 * 3_600_000).send(MSG)
    unsigned = dingtalk_channel(dingtalk, secret=None).send(MSG)
    for outcome in (wrong, stale, unsigned):
        assert (outcome.status, outcome.error_code) == ("retry", "310000")  # waits for a fix
    assert accepted(dingtalk) == []


def test_dingtalk_robot_without_signing(dingtalk: FakeServer):
    assert dingtalk_channel(dingtalk, token=UNSIGNED, secret=None).send(MSG).status == "sent"
    assert accepted(dingtalk)[0]["signed"] is False


@pytest.mark.parametrize(("mode", "status", "code", "after"), [
    ("rate-limit", "retry", "130101", 60.0),
    ("invalid-template", "failed", "40035", None),
    ("503", "retry", None, None),
])
def test_dingtalk_refusals(dingtalk: FakeServer, mode: str, status: str, code: str | None, after: float | None):
    fail(dingtalk, mode)
    outcome = dingtalk_channel(dingtalk).send(MSG)
    assert (outcome.status, outcome.error_code, outcome.retry_after_s) == (status, code, after)
    assert accepted(dingtalk) == []


# -- both: crash in flight, environment -----------------------------------------------------------
@pytest.mark.parametrize("provider", ["wecom", "dingtalk"])
@pytest.mark.parametrize("mode", ["500", "timeout", "drop"])
def test_crash_in_flight_is_posted_again_at_least_once(request: pytest.FixtureRequest, provider: str, mode: str):
    fake: FakeServer = request.getfixturevalue(provider)
    channel = wecom_channel(fake) if provider == "wecom" else dingtalk_channel(fake)
    assert channel.can_look_up is False  # a webhook keeps no list of what it posted
    fail(fake, mode, delay_s=3)
    settled, seen = deliver(channel, MSG, datetime.now(UTC) - timedelta(minutes=1))
    assert [o.status for o in seen] == ["unknown", "sent"] and settled.status == "sent"
    assert len(accepted(fake)) == 2  # the documented choice: a duplicate rather than a loss


def test_robot_secrets_come_from_the_environment(dingtalk: FakeServer, wecom: FakeServer, tmp_path: Path):
    secret = tmp_path / "dingtalk_secret"
    secret.write_text(SECRET)
    configured = ChannelsSettings.model_validate({
        "dingtalk_robot": {"robots": [robot()]}, "wecom_robot": {"robots": [robot()]}})
    env = {"HAZWATCH_DINGTALK_ROBOT_DUTY_TOKEN": TOKEN, "HAZWATCH_DINGTALK_ROBOT_DUTY_SECRET_FILE": str(secret),
           "HAZWATCH_DINGTALK_BASE_URL": dingtalk.url, "HAZWATCH_WECOM_ROBOT_DUTY_KEY": wecom_robot.DEFAULT_KEY,
           "HAZWATCH_WECOM_BASE_URL": wecom.url}
    resolved = with_env(configured, env)
    assert resolved.dingtalk_robot is not None and resolved.wecom_robot is not None
    assert DingtalkRobot(resolved.dingtalk_robot, timeout_s=1.0).send(MSG).status == "sent"
    assert WecomRobot(resolved.wecom_robot, timeout_s=1.0).send(MSG).status == "sent"
