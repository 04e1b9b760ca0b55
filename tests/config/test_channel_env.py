"""The channels' environment variables (``config.channels.channel_env``) applied by the loader
with ``ENV_OVERRIDES``: configured sections only, ``<VARIABLE>_FILE`` secrets, and a bad value
naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.channels import CHANNEL_ENV, ChannelConfigError, ChannelsSettings, channel_env, with_env
from config.loader import ConfigError, load_config
from tests.config.fixtures import materialise

CHANNELS = {
    "sms_aliyun": {"sign_name": "应急管理", "templates": [{"code": "SMS_100000001", "params": {"site": "site"}}]},
    "sms_tencent": {"sms_sdk_app_id": "1400006666", "sign_name": "应急管理",
                    "templates": [{"id": "2000001", "params": ["site"]}]},
    "wecom_robot": {"robots": [{"id": "lingang-safety", "name": "临港石化安全群", "audiences": ["officers"]}]},
    "dingtalk_robot": {"robots": [{"id": "duty", "name": "值班群", "audiences": ["operators"]}]},
}


def _directory(tmp_path: Path, channels: dict[str, object]) -> Path:
    directory = materialise(tmp_path / "config")
    path = directory / "hazwatch.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["notify"]["channels"] = channels
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return directory


def _issues(directory: Path, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory, env=env)
    return [str(i) for i in info.value.issues]


def test_the_loader_fills_configured_channels_from_the_environment_and_files(tmp_path: Path) -> None:
    secret = tmp_path / "aliyun_secret"
    secret.write_text("  from-a-file\n")
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-env", "ALIBABA_CLOUD_ACCESS_KEY_SECRET_FILE": str(secret),
           "HAZWATCH_ALIYUN_SMS_ENDPOINT": "http://127.0.0.1:8083",
           "TENCENTCLOUD_SECRET_ID": "AKID-env", "TENCENTCLOUD_SECRET_KEY": "k",
           "HAZWATCH_WECOM_ROBOT_LINGANG_SAFETY_KEY": "wecom-key",
           "HAZWATCH_DINGTALK_ROBOT_DUTY_TOKEN": "token", "HAZWATCH_DINGTALK_ROBOT_DUTY_SECRET": "SECx",
           "HAZWATCH_DINGTALK_BASE_URL": "http://127.0.0.1:8086"}
    channels = load_config(_directory(tmp_path, CHANNELS), env=env).settings.notify.channels
    aliyun, tencent = channels.sms_aliyun, channels.sms_tencent
    assert aliyun is not None and aliyun.access_key_id == "LTAI-env" and aliyun.endpoint == "http://127.0.0.1:8083"
    assert aliyun.access_key_secret is not None and aliyun.access_key_secret.get_secret_value() == "from-a-file"
    assert tencent is not None and tencent.secret_id == "AKID-env"
    assert channels.wecom_robot is not None and channels.dingtalk_robot is not None
    key = channels.wecom_robot.robots[0].key
    assert key is not None and key.get_secret_value() == "wecom-key"
    duty = channels.dingtalk_robot.robots[0]
    assert duty.access_token is not None and duty.access_token.get_secret_value() == "token"
    assert channels.dingtalk_robot.base_url == "http://127.0.0.1:8086"
    assert "from-a-file" not in repr(channels)


def test_a_section_the_file_does_not_configure_is_not_created(tmp_path: Path) -> None:
    env = {var: "x" for var in CHANNEL_ENV}
    channels = load_config(_directory(tmp_path, {"sms_tencent": CHANNELS["sms_tencent"]}), env=env).settings.notify.channels
    assert channels.sms_aliyun is None and channels.wecom_robot is None and channels.dingtalk_robot is None
    assert channels.sms_tencent is not None and channels.sms_tencent.secret_id == "x"


def test_a_channel_secret_file_that_cannot_be_read_names_the_variable(tmp_path: Path) -> None:
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    empty.write_text("\n")
    issues = _issues(_directory(tmp_path, CHANNELS), {
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET_FILE": str(missing),
        "HAZWATCH_DINGTALK_ROBOT_DUTY_SECRET_FILE": str(empty),
        "TENCENTCLOUD_SECRET_KEY_FILE": str(empty), "TENCENTCLOUD_SECRET_KEY": "y"})
    assert sorted(issues) == sorted([
        f"{missing}: ALIBABA_CLOUD_ACCESS_KEY_SECRET_FILE: cannot read the file: No such file or directory",
        f"{empty}: HAZWATCH_DINGTALK_ROBOT_DUTY_SECRET_FILE: the file is empty",
        f"{empty}: TENCENTCLOUD_SECRET_KEY_FILE: TENCENTCLOUD_SECRET_KEY is set too: set one of them",
    ])


def test_a_bad_value_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    directory = materialise(tmp_path / "config")
    assert _issues(directory, {"HAZWATCH_ALERTS_HTTP_PORT": "eighty"}) == [
        ("hazwatch.yaml: notify.http.port: wrong type: expected a whole number, got 'eighty' "
        "(from HAZWATCH_ALERTS_HTTP_PORT)")]
    port = tmp_path / "port"
    port.write_text("70000")
    assert _issues(directory, {"HAZWATCH_ALERTS_HTTP_PORT_FILE": str(port)}) == [
        ("hazwatch.yaml: notify.http.port: out of range: must be at most 65535, got '70000' "
        "(from HAZWATCH_ALERTS_HTTP_PORT_FILE)")]


def test_channel_env_lists_the_variables_of_what_is_configured() -> None:
    data = {"notify": {"channels": {"dingtalk_robot": {"robots": [{"id": "county.duty"}, {"name": "no id"}]}}}}
    assert channel_env(data) == [
        ("HAZWATCH_DINGTALK_BASE_URL", ("notify", "channels", "dingtalk_robot", "base_url")),
        ("HAZWATCH_DINGTALK_ROBOT_COUNTY_DUTY_TOKEN", ("notify", "channels", "dingtalk_robot", "robots", 0, "access_token")),
        ("HAZWATCH_DINGTALK_ROBOT_COUNTY_DUTY_SECRET", ("notify", "channels", "dingtalk_robot", "robots", 0, "secret")),
    ]
    assert channel_env({"notify": {"channels": None}}) == channel_env({}) == []


def test_with_env_applies_the_same_variables_to_settings_built_without_the_loader(tmp_path: Path) -> None:
    configured = ChannelsSettings.model_validate(CHANNELS)
    resolved = with_env(configured, {"HAZWATCH_WECOM_ROBOT_LINGANG_SAFETY_KEY": "k"})
    assert resolved.wecom_robot is not None and resolved.wecom_robot.robots[0].key is not None
    with pytest.raises(ChannelConfigError, match=r"HAZWATCH_WECOM_ROBOT_LINGANG_SAFETY_KEY_FILE: cannot read"):
        with_env(configured, {"HAZWATCH_WECOM_ROBOT_LINGANG_SAFETY_KEY_FILE": str(tmp_path / "none")})
