"""Pure parts of the channel wiring: audiences resolved per channel kind, the outbox name of
Twilio, the template fields of an outbox send; and the fakes' command line."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from alerts.audience import members, outbox_channel
from alerts.channel_message import channel_message
from alerts.channels.base import Message
from alerts.channels.wecom_robot import WecomRobot
from alerts.store import Notification
from config import example_dir, load_config
from config.channels import WecomRobotSettings
from config.models import Config
from formats.warning import WarningEvent

CFG = load_config(example_dir(), env={})


def with_robots(config: Config) -> Config:
    channels = config.settings.notify.channels.model_validate({
        "wecom_robot": {"robots": [
            {"id": "officers", "name": "安全群", "audiences": ["officers"], "key": "k"},
            {"id": "everyone", "name": "值班群", "audiences": ["operators", "officers"], "key": "k"}]}})
    notify = config.settings.notify.model_copy(update={"channels": channels})
    settings = config.settings.model_copy(update={"notify": notify})
    return Config(settings=settings, sites=config.sites, zones=config.zones, recipients=config.recipients)


def test_twilio_keeps_its_outbox_name():
    assert outbox_channel("sms") == outbox_channel("sms-twilio") == "sms"
    assert outbox_channel("sms-aliyun") == "sms-aliyun" and outbox_channel("cap") == "cap"
    site = CFG.site("CH-001")
    assert members(CFG, site, "officers", channel="sms-twilio") == members(CFG, site, "officers")


def test_members_by_channel_kind():
    config, site = with_robots(CFG), CFG.site("CH-001")
    people = members(config, site, "officers", channel="sms-aliyun")
    assert people and {t.channel for t in people} == {"sms-aliyun"}
    assert [t.address for t in people] == [t.address for t in members(config, site, "officers")]
    groups = members(config, site, "officers", channel="wecom-robot", rule="r")
    assert [(t.address, t.role, t.channel) for t in groups] == [
        ("officers", "officer", "wecom-robot"), ("everyone", "officer", "wecom-robot")]
    assert [t.address for t in members(config, site, "operators", channel="wecom-robot")] == ["everyone"]
    assert members(config, site, "operators", channel="dingtalk-robot") == []  # none configured
    assert members(config, site, "officers", channel="cap") == []


def row(kind: str, level: str, detail: dict[str, object], language: str = "zh-CN") -> Notification:
    ts = int(dt.datetime(2026, 11, 23, 2, 45, tzinfo=dt.UTC).timestamp() * 1000)
    event = WarningEvent(episode="e1", site="RG-001", subject="RG-001/RAIN-5M", rule="rain", kind=kind,
                         level=level, previous="red" if kind == "cleared" else "orange", ts=ts, emitted_at=ts,
                         value=81.6, threshold=80.0, unit="mm", detail=detail)
    return Notification(id=1, key="k1", channel="sms-aliyun", recipient="+8613700000301", level=level, kind=kind,
                        language=language, event=event.to_json().decode())


def test_template_fields_of_a_warning_and_of_its_all_clear():
    msg = channel_message([row("escalated", "red", {"window_h": 1})], "【hazwatch】text", CFG)
    assert msg.key == "k1" and msg.level == "red" and msg.kind == "escalated" and msg.text == "【hazwatch】text"
    assert msg.fields["site"] == CFG.site("RG-001").name and msg.fields["level"] == "红色"
    assert (msg.fields["sensor"], msg.fields["value"], msg.fields["threshold"]) == ("1小时雨量", "81.6mm", "80mm")
    assert msg.fields["time"] == "11月23日10:45" and msg.fields["event"] == "预警升级"
    assert "红色预警" in msg.title
    cleared = channel_message([row("cleared", "normal", {"peak": "red"})], "x", CFG)
    assert cleared.level == "normal" and cleared.fields["level"] == "红色" and cleared.fields["event"] == "预警解除"
    english = channel_message([row("raised", "red", {}, language="en")], "x", CFG)
    assert english.fields["level"] == "Red" and english.fields["time"] == "10:45 23 Nov"


def test_twilio_needs_only_the_text():
    msg = channel_message([row("raised", "red", {})], "body", CFG, text_only=True)
    assert msg == Message("+8613700000301", "body", key="k1", level="red", kind="raised", language="zh-CN")


@pytest.mark.parametrize("channel", ["sms-aliyun", "sms-tencent", "wecom-robot", "dingtalk-robot"])
def test_fake_command_announces_its_url(channel: str):
    root = Path(__file__).resolve().parents[2]
    process = subprocess.Popen([sys.executable, "-m", "hazwatch", "channels", "fake", channel, "--port", "0"],
                               cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"fake-[a-z-]+ listening on (http://127\.0\.0\.1:\d+)", line)
        assert match, line
        if channel == "wecom-robot":
            robot = WecomRobot(WecomRobotSettings(base_url=match.group(1), robots=[
                {"id": "duty", "name": "值班群", "audiences": ["operators"], "key": "fake-wecom-robot-key"}]))
            assert robot.send(Message("duty", "预警", title="红色预警")).status == "sent"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
