"""check-config's errors for a routed channel whose settings are missing or incomplete
(``config.channel_checks``), and the channel kinds ``config.checks`` takes from the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from alerts.channels.registry import build_routed
from config.channel_checks import channel_errors
from config.channel_registry import REGISTRY
from config.channels import CHANNEL_ENV, ChannelConfigError
from config.checks import _kind
from config.loader import ENV_OVERRIDES, example_dir, load_config
from hazwatch.cli import app
from tests.config.fixtures import materialise

ALIYUN = {"sign_name": "应急管理", "templates": [{"code": "SMS_100000001", "params": {"site": "site"}}]}
DUTY = {"id": "duty", "name": "值班群", "audiences": ["operators"]}


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """check-config reads the process environment; keep a developer's or CI's settings out of it."""
    for var in [*ENV_OVERRIDES, *CHANNEL_ENV, "HAZWATCH_DINGTALK_ROBOT_DUTY_TOKEN"]:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(f"{var}_FILE", raising=False)


def _directory(tmp_path: Path, channels: dict[str, object], officers: list[str]) -> Path:
    directory = materialise(tmp_path / "config")
    path = directory / "hazwatch.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["routing"]["rules"] = [
        {"name": "centre", "audiences": ["operators"], "channels": ["sms", "dingtalk-robot"]},
        {"name": "enterprise", "audiences": ["officers"], "channels": officers},
        {"name": "residents-red", "match": {"levels": ["red"]}, "audiences": ["residents"],
         "channels": ["sms-aliyun", "cap"]},
    ]
    data["notify"]["channels"] = channels
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return directory


def _check(directory: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["check-config", str(directory)])
    return result.exit_code, result.stderr.splitlines()


def test_a_routed_channel_without_its_section_is_an_error(tmp_path: Path) -> None:
    directory = _directory(tmp_path, {"dingtalk_robot": {"robots": [{**DUTY, "access_token": "t"}]}},
                           ["sms-aliyun", "wecom-robot"])
    code, lines = _check(directory)
    assert code == 2
    assert lines == [
        (f"{directory}/hazwatch.yaml: routing.rules[1].channels[0]: sms-aliyun (Aliyun SMS, 阿里云短信) is used by "
        "routing rules 'enterprise', 'residents-red', but notify.channels.sms_aliyun is not configured: add it "
        "with at least sign_name, templates (docs/CONFIGURATION.md, \"Channels\")"),
        (f"{directory}/hazwatch.yaml: routing.rules[1].channels[1]: wecom-robot (WeCom group robot, 企业微信群机器人) "
        "is used by routing rule 'enterprise', but notify.channels.wecom_robot is not configured: add it with "
        "at least robots (docs/CONFIGURATION.md, \"Channels\")"),
        "2 error(s)",
    ]


def test_a_routed_channel_without_its_secrets_names_the_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _directory(tmp_path, {"sms_aliyun": {**ALIYUN, "access_key_id": "LTAI-file"},
                                      "dingtalk_robot": {"robots": [DUTY]}}, ["sms-aliyun"])
    code, lines = _check(directory)
    assert code == 2
    assert lines == [
        (f"{directory}/hazwatch.yaml: notify.channels.dingtalk_robot.robots[0].access_token: dingtalk-robot "
        "(DingTalk group robot, 钉钉群机器人) is used by routing rule 'centre', but its robot 'duty' has no "
        "access_token: set HAZWATCH_DINGTALK_ROBOT_DUTY_TOKEN (or HAZWATCH_DINGTALK_ROBOT_DUTY_TOKEN_FILE) where "
        "the alerts service runs, or write access_token in hazwatch.yaml"),
        (f"{directory}/hazwatch.yaml: notify.channels.sms_aliyun.access_key_secret: sms-aliyun (Aliyun SMS, 阿里云短信) "
        "is used by routing rules 'enterprise', 'residents-red', but it has no access_key_secret: set "
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET (or ALIBABA_CLOUD_ACCESS_KEY_SECRET_FILE) where the alerts service runs, "
        "or write access_key_secret in hazwatch.yaml"),
        "2 error(s)",
    ]
    # the same settings stop the alerts service with the same words
    with pytest.raises(ChannelConfigError, match="HAZWATCH_DINGTALK_ROBOT_DUTY_TOKEN.*ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        build_routed(load_config(directory, env={}).settings, {})
    # given by the environment, as in the alerts container: valid
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "s")
    monkeypatch.setenv("HAZWATCH_DINGTALK_ROBOT_DUTY_TOKEN", "t")
    assert _check(directory) == (0, [])


def test_a_channel_configured_but_not_routed_needs_nothing(tmp_path: Path) -> None:
    directory = _directory(tmp_path, {"sms_aliyun": ALIYUN, "dingtalk_robot": {"robots": [DUTY]}}, ["sms"])
    settings = load_config(directory, env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "a", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s",
                                           "HAZWATCH_DINGTALK_ROBOT_DUTY_TOKEN": "t"}).settings
    assert channel_errors(settings) == []  # sms-aliyun (residents) and the duty group have what they need
    unrouted = settings.model_copy(update={"routing": settings.routing.model_copy(update={"rules": [
        r.model_copy(update={"channels": ["sms"]}) for r in settings.routing.rules]})})
    bare = load_config(directory, env={}).settings  # no secrets at all
    assert channel_errors(bare) != [] and channel_errors(bare.model_copy(update={"routing": unrouted.routing})) == []


def test_the_example_routes_no_channel_that_needs_settings() -> None:
    assert channel_errors(load_config(example_dir(), env={}).settings) == []


def test_checks_take_a_channels_kind_from_the_registry() -> None:
    assert {s.name: _kind(s.name) for s in REGISTRY} == {s.name: s.kind for s in REGISTRY}
    assert _kind("sms") == "sms"  # the alias of sms-twilio
    with pytest.raises(KeyError, match="unknown channel"):
        _kind("sms-carrier-pigeon")  # no guessing from the name


def test_the_escalation_channels_are_checked_like_the_routed_ones(tmp_path: Path) -> None:
    directory = _directory(tmp_path, {"dingtalk_robot": {"robots": [{**DUTY, "access_token": "t"}]}}, ["sms"])
    path = directory / "hazwatch.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["routing"]["rules"] = data["routing"]["rules"][:2]  # no rule names sms-aliyun or wecom-robot
    data["notify"]["escalation"]["channels"] = ["sms", "wecom-robot"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    code, lines = _check(directory)
    assert code == 2
    assert lines[0] == (f"{directory}/hazwatch.yaml: notify.escalation.channels[1]: wecom-robot (WeCom group robot, "
                        "企业微信群机器人) is used by the 叫应 steps (notify.escalation.channels), but "
                        "notify.channels.wecom_robot is not configured: add it with at least robots "
                        "(docs/CONFIGURATION.md, \"Channels\")")


@pytest.mark.parametrize(("channels", "reason"), [
    (["sms", "cap"], "叫应 reaches people who can answer: remove the broadcast channel(s) ['cap']"),
    (["sms", "sms-twilio"], "a channel is listed twice (sms is sms-twilio): ['sms', 'sms-twilio']"),
])
def test_escalation_channels_are_people_each_once(tmp_path: Path, channels: list[str], reason: str) -> None:
    directory = materialise(tmp_path / "config")
    path = directory / "hazwatch.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["notify"]["escalation"]["channels"] = channels
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    code, lines = _check(directory)
    assert code == 2
    assert lines[0] == f"{directory}/hazwatch.yaml: notify.escalation.channels: {reason}"
