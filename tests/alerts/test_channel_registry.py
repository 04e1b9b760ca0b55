"""The channel registry, the protocol's RecordingChannel, the configuration's channel names and
``hazwatch channels``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from alerts.channels.base import Channel, ChannelError, Message, Outcome
from alerts.channels.recording import RecordingChannel
from alerts.channels.registry import ALIASES, CHANNEL_NAMES, REGISTRY, canonical, channel_class, spec
from config.notify import RoutingRule
from hazwatch.cli import app

MSG = Message("+8613800000001", "【hazwatch】石桥沟雨量站红色预警", key="k1", level="red", kind="raised")


def test_every_registered_channel_implements_the_protocol():
    for s in REGISTRY:
        cls = channel_class(s.name)
        assert cls.name == s.name
        assert isinstance(cls.can_look_up, bool)
        assert callable(cls.send) and callable(cls.find_sent) and callable(cls.from_settings)
        assert s.kind in ("sms", "broadcast", "group") and s.needs


def test_sms_is_twilio_and_cap_stays_cap():
    assert canonical("sms") == "sms-twilio" == spec("sms").name
    assert canonical("cap") == "cap" and spec("cap").kind == "broadcast"
    with pytest.raises(KeyError):
        canonical("fax")


def test_configuration_names_come_from_the_registry():
    assert set(CHANNEL_NAMES) == set(ALIASES) | {s.name for s in REGISTRY}
    for name in CHANNEL_NAMES:
        RoutingRule(name="r", audiences=["operators"], channels=[name])
    assert RoutingRule(name="r", audiences=["operators"]).channels == ["sms"]  # today's default
    with pytest.raises(ValidationError):
        RoutingRule(name="r", audiences=["operators"], channels=["fax"])


def test_recording_channel_follows_its_script_then_sends():
    channel = RecordingChannel([Outcome("retry", retry_after_s=60), Outcome("failed", error_code="x")])
    assert isinstance(channel, Channel)
    assert channel.send(MSG) == Outcome("retry", retry_after_s=60)
    assert channel.send(MSG).status == "failed"
    sent = channel.send(MSG)
    assert sent.status == "sent" and sent.provider_id
    assert len(channel.calls) == 3 and [t.message for t in channel.sent] == [MSG]


def test_recording_channel_crash_in_flight_is_found_not_resent():
    channel = RecordingChannel([Outcome("unknown", error="read timeout")])
    since = datetime.now(UTC) - timedelta(seconds=1)
    assert channel.send(MSG).status == "unknown"
    found = channel.find_sent(MSG, since)
    assert found is not None and found == channel.sent[0].provider_id
    assert channel.find_sent(Message(MSG.to, MSG.text, key="other"), since) is None
    assert RecordingChannel().find_sent(MSG, since) is None


def test_recording_channel_can_fail_look_ups():
    with pytest.raises(ChannelError):
        RecordingChannel(lookup_fails=True).find_sent(MSG, datetime.now(UTC))


def test_channels_command_lists_name_kind_and_needs():
    result = CliRunner().invoke(app, ["channels", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in map(json.loads, result.output.splitlines())}
    assert list(rows) == [s.name for s in REGISTRY]
    assert rows["sms-twilio"]["aliases"] == ["sms"]
    assert rows["dingtalk-robot"]["kind"] == "group"
    assert any("ALIBABA_CLOUD_ACCESS_KEY_SECRET" in n for n in rows["sms-aliyun"]["needs"])
    text = CliRunner().invoke(app, ["channels"])
    assert text.exit_code == 0 and "sms-tencent" in text.output and "needs" in text.output


def test_the_channel_alarm_names_a_channel_as_people_do():
    import datetime as dt

    from alerts.channel_alarm import _text
    from alerts.store import ChannelState

    now = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
    row = ChannelState(channel="sms-aliyun", failures=5, failing_since=now)
    assert "阿里云短信通道" in _text("sms-aliyun", "channel-alarm", now, row, "zh-CN", "Asia/Shanghai")
    assert "Aliyun SMS channel" in _text("sms-aliyun", "channel-ok", now, None, "en", "Asia/Shanghai")
    assert all(s.label[0] and s.label[1] for s in REGISTRY if s.name not in ("sms-twilio", "cap"))
