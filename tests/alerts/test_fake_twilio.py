"""Component tests: the real ``twilio`` client, through SmsChannel, against the fake Twilio."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from alerts.channels.sms import SmsChannel, delivery_outcome, verify_signature
from alerts.fakes.twilio import FakeTwilioServer
from hazwatch.runtime import free_port

T = TypeVar("T")
# conftest.CallbackReceiver; conftest is not importable as a module, so typed loosely here
CallbackReceiver = Any

TO = "+8613800000001"
OTHER = "+8613800000002"
FROM_NUMBER = "+15005550006"  # the channel fixture's sender
RED_WARNING = "【红色预警】尾矿库浸润线埋深低于控制值，请立即转移。"


def wait_for(probe: Callable[[], T], timeout_s: float = 5.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {value!r})")
        time.sleep(0.01)


def control(fake: FakeTwilioServer, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, fake.url + path, trust_env=False, **kwargs)
    response.raise_for_status()
    return response.json()


def fail(fake: FakeTwilioServer, mode: str, **rule: Any) -> None:
    control(fake, "POST", "/_fake/fail", json={"mode": mode, **rule})


def accepted(fake: FakeTwilioServer) -> list[dict[str, Any]]:
    return list(control(fake, "GET", "/_fake/messages")["messages"])


def test_send_is_accepted_and_can_be_read_back(fake: FakeTwilioServer, channel: SmsChannel):
    result = channel.send(TO, RED_WARNING)

    assert result.outcome == "sent"
    assert result.sid is not None and re.fullmatch(r"SM[0-9a-f]{32}", result.sid)
    assert (result.status, result.error_code, result.segments) == ("queued", None, 1)
    [row] = accepted(fake)
    assert row["sid"] == result.sid
    assert (row["to"], row["from"], row["body"]) == (TO, FROM_NUMBER, RED_WARNING)
    [listed] = channel.client.messages.list(to=TO)
    assert (listed.sid, listed.body, listed.from_) == (result.sid, RED_WARNING, FROM_NUMBER)
    assert listed.date_created is not None and listed.date_created.tzinfo is not None
    assert channel.client.messages.list(to=OTHER) == []
    fetched = wait_for(lambda: _delivered(channel, result.sid))
    assert fetched.date_sent is not None


def _delivered(channel: SmsChannel, sid: str | None) -> Any:
    message = channel.client.messages(sid).fetch()
    return message if message.status == "delivered" else None


@pytest.mark.parametrize(
    ("length", "expected"),
    [(70, 1), (71, 2), (134, 2), (135, 3)],
    ids=["70-chars", "71-chars", "134-chars", "135-chars"],
)
def test_segments_of_chinese_bodies(
    fake: FakeTwilioServer, channel: SmsChannel, length: int, expected: int
):
    result = channel.send(TO, "警" * length)

    assert (result.outcome, result.segments) == ("sent", expected)
    assert accepted(fake)[0]["num_segments"] == expected


@pytest.mark.parametrize(("mode", "code"), [("503", 20503), ("20429", 20429)])
def test_transient_errors_are_retryable_and_send_nothing(
    fake: FakeTwilioServer, channel: SmsChannel, mode: str, code: int
):
    fail(fake, mode)

    result = channel.send(TO, RED_WARNING)

    assert (result.outcome, result.error_code, result.sid) == ("retry", code, None)
    assert accepted(fake) == []
    assert channel.send(TO, RED_WARNING).outcome == "sent"  # the rule was used up


@pytest.mark.parametrize("code", [21211, 21610, 21614])
def test_permanent_errors_fail(fake: FakeTwilioServer, channel: SmsChannel, code: int):
    fail(fake, str(code), count=2)

    result = channel.send(TO, RED_WARNING)

    assert (result.outcome, result.error_code) == ("failed", code)
    assert result.error is not None and "HTTP 400" in result.error
    assert accepted(fake) == []


def test_timeout_is_unknown_but_the_message_was_sent_once(fake: FakeTwilioServer):
    impatient = SmsChannel(
        fake.account_sid, fake.auth_token, FROM_NUMBER, base_url=fake.url, timeout_s=1.0
    )
    since = datetime.now(UTC)
    fail(fake, "timeout", delay_s=3.0)

    result = impatient.send(TO, RED_WARNING)

    assert (result.outcome, result.sid) == ("unknown", None)
    assert "ReadTimeout" in (result.error or ""), "the fake held its answer (not a 5xx at once)"
    [row] = accepted(fake)
    assert row["body"] == RED_WARNING
    assert impatient.find_sent(TO, RED_WARNING, since) == row["sid"]
    assert impatient.find_sent(TO, "another body", since) is None
    assert impatient.find_sent(OTHER, RED_WARNING, since) is None
    assert impatient.find_sent(TO, RED_WARNING, since + timedelta(minutes=5)) is None


def test_wrong_auth_token_is_retried(fake: FakeTwilioServer):
    """Bad credentials stop every message of the account: they wait for a fix, not give up."""
    wrong = SmsChannel(fake.account_sid, "not-the-token", FROM_NUMBER, base_url=fake.url)

    result = wrong.send(TO, RED_WARNING)

    assert (result.outcome, result.error_code) == ("retry", 20003)
    assert result.error is not None and "HTTP 401" in result.error
    assert accepted(fake) == []


def test_connection_refused_is_retryable():
    nowhere = SmsChannel(
        "AC" + "0" * 32, "token", FROM_NUMBER, base_url=f"http://127.0.0.1:{free_port()}"
    )

    result = nowhere.send(TO, RED_WARNING)

    assert (result.outcome, result.sid) == ("retry", None)


def test_failure_injection_can_target_one_number(fake: FakeTwilioServer, channel: SmsChannel):
    fail(fake, "21211", to=OTHER)

    assert channel.send(TO, RED_WARNING).outcome == "sent"
    assert channel.send(OTHER, RED_WARNING).outcome == "failed"
    assert channel.send(OTHER, RED_WARNING).outcome == "sent"
    assert [row["to"] for row in accepted(fake)] == [TO, OTHER]


def test_status_callbacks_are_signed(
    fake: FakeTwilioServer, channel: SmsChannel, callback_receiver: CallbackReceiver
):
    url = callback_receiver.base_url + "/sms/status?episode=42"

    result = channel.send(TO, RED_WARNING, status_callback=url)

    wait_for(lambda: len(callback_receiver.received()) >= 2)
    sent, delivered = callback_receiver.received()
    assert [sent.params["MessageStatus"], delivered.params["MessageStatus"]] == [
        "sent",
        "delivered",
    ]
    for callback in (sent, delivered):
        assert callback.path == "/sms/status?episode=42"
        assert callback.params["MessageSid"] == result.sid
        assert (callback.params["To"], callback.params["From"]) == (TO, FROM_NUMBER)
        assert callback.params["AccountSid"] == fake.account_sid
        assert "ErrorCode" not in callback.params
        assert verify_signature(fake.auth_token, url, callback.params, callback.signature)
    tampered = {**delivered.params, "MessageStatus": "failed"}
    assert not verify_signature(fake.auth_token, url, tampered, delivered.signature)
    assert not verify_signature("other-token", url, delivered.params, delivered.signature)
    assert not verify_signature(fake.auth_token, url, delivered.params, None)
    assert delivery_outcome(delivered.params["MessageStatus"]) == "delivered"
    assert accepted(fake)[0]["status"] == "delivered"


@pytest.mark.parametrize(
    ("mode", "statuses", "code", "outcome"),
    [
        ("undelivered", ["sent", "undelivered"], 30003, "failed"),
        ("30001", ["failed"], 30001, "retry"),
    ],
)
def test_delivery_failures_arrive_by_callback(
    fake: FakeTwilioServer,
    channel: SmsChannel,
    callback_receiver: CallbackReceiver,
    mode: str,
    statuses: list[str],
    code: int,
    outcome: str,
):
    url = callback_receiver.base_url + "/sms/status"
    fail(fake, mode)

    result = channel.send(TO, RED_WARNING, status_callback=url)

    assert result.outcome == "sent"  # accepted; the failure comes later
    wait_for(lambda: len(callback_receiver.received()) >= len(statuses))
    callbacks = callback_receiver.received()
    assert [c.params["MessageStatus"] for c in callbacks] == statuses
    final = callbacks[-1]
    assert final.params["ErrorCode"] == str(code)
    assert verify_signature(fake.auth_token, url, final.params, final.signature)
    status, error_code = final.params["MessageStatus"], int(final.params["ErrorCode"])
    assert delivery_outcome(status, error_code) == outcome
    assert channel.find_sent(TO, RED_WARNING, datetime.now(UTC) - timedelta(minutes=1)) == (
        result.sid if mode == "undelivered" else None  # a failed message never left Twilio
    )


def test_unreachable_callback_url_does_not_break_the_server(
    fake: FakeTwilioServer, channel: SmsChannel
):
    result = channel.send(TO, RED_WARNING, status_callback=f"http://127.0.0.1:{free_port()}/x")

    attempts = wait_for(lambda: control(fake, "GET", "/_fake/callbacks")["callbacks"][1:])
    assert attempts[0]["status"] == "delivered" and attempts[0]["error"]
    assert accepted(fake)[0]["status"] == "delivered"
    assert channel.client.messages(result.sid).fetch().sid == result.sid


def test_list_follows_pages_newest_first(fake: FakeTwilioServer, channel: SmsChannel):
    sids = [channel.send(TO, f"test {i}").sid for i in range(5)]

    listed = channel.client.messages.list(to=TO, page_size=2)

    assert [m.sid for m in listed] == sids[::-1]
    assert len(control(fake, "GET", "/_fake/messages", params={"since": 3})["messages"]) == 2


def test_command_line_entry_point_announces_its_url():
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen(
        [sys.executable, "-m", "alerts.fakes.twilio", "--port", "0", "--auth-token", "t0ken"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"fake-twilio listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        channel = SmsChannel("AC" + "0" * 32, "t0ken", FROM_NUMBER, base_url=match.group(1))
        assert channel.send(TO, RED_WARNING).outcome == "sent"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_the_control_api_takes_only_twilios_own_fail_modes(fake: FakeTwilioServer, channel: SmsChannel):
    """A mode of the other fakes (``rate-limit``) is refused with 422 and queues nothing; a rule
    with a count is taken that many times, then the sends go through again."""
    response = httpx.post(fake.url + "/_fake/fail", json={"mode": "rate-limit"}, trust_env=False)
    assert response.status_code == 422 and "20429" in response.text
    assert channel.send(TO, RED_WARNING).outcome == "sent"
    fail(fake, "503", count=2)
    assert [channel.send(TO, RED_WARNING).outcome for _ in range(3)] == ["retry", "retry", "sent"]
