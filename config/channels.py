"""Settings of the channels beyond Twilio SMS and CAP: ``notify.channels`` in hazwatch.yaml.

Each section is optional; a channel named in a routing rule needs its section (``hazwatch
check-config`` reports one missing, ``config.channel_checks``; the alerts service stops when it
builds it, ``alerts.channels.registry.build``). Secrets may stay out of the file: the
configuration loader fills a configured section from the environment (:func:`channel_env`, applied
with ``config.loader.ENV_OVERRIDES``), each variable also as ``<VARIABLE>_FILE`` (the path of a
file holding the value: Docker secrets, ``config.env``), as the Twilio account is.
:data:`CHANNEL_ENV` lists the fixed variables; a robot's
secrets are ``HAZWATCH_WECOM_ROBOT_<ID>_KEY``, ``HAZWATCH_DINGTALK_ROBOT_<ID>_TOKEN`` and
``HAZWATCH_DINGTALK_ROBOT_<ID>_SECRET`` (the robot id upper-cased, other characters as ``_``).

Chinese SMS (Aliyun, Tencent) must use templates approved by the provider: ``templates`` maps a
message's warning level and kind to a template and fills its parameters from named fields of
the message (``alerts.channels.templates.FIELDS``); the first template that matches is used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from config.env import EnvValueError, env_value

__all__ = [
    "CHANNEL_ENV",
    "FIELDS",
    "KINDS",
    "AliyunSmsSettings",
    "AliyunTemplate",
    "ChannelConfigError",
    "ChannelsSettings",
    "DingtalkGroupRobot",
    "DingtalkRobotSettings",
    "TencentSmsSettings",
    "TencentTemplate",
    "WecomGroupRobot",
    "WecomRobotSettings",
    "channel_env",
    "robot_env",
    "with_env",
]

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Level = Literal["blue", "yellow", "orange", "red", "normal"]
#: What a message is about (``alerts.plan.Notice.kind``).
KINDS = ("raised", "escalated", "deescalated", "cleared", "escalation", "reminder", "over-cap",
         "channel-failing", "channel-recovered")
Kind = Literal["raised", "escalated", "deescalated", "cleared", "escalation", "reminder", "over-cap",
               "channel-failing", "channel-recovered"]
#: The named values a template parameter can take (``alerts.channels.templates`` fills them).
FIELDS = ("site", "enterprise", "level", "level_en", "sensor", "value", "threshold", "time", "event",
          "text")
TemplateField = Literal["site", "enterprise", "level", "level_en", "sensor", "value", "threshold",
                        "time", "event", "text"]


class ChannelConfigError(ValueError):
    """A channel's settings are missing or an environment variable (or its file) is unusable."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Template(_Model):
    levels: list[Level] | None = None
    """Warning levels this template is for; omitted: any."""
    kinds: list[Kind] | None = None
    """Message kinds this template is for; omitted: any."""


class AliyunTemplate(_Template):
    code: Annotated[str, StringConstraints(pattern=r"^SMS_\d+$")]
    """The approved template's TemplateCode, e.g. SMS_465320211."""
    params: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], TemplateField] = {}
    """Template variable -> field, e.g. {site: site, level: level}: TemplateParam {"site": ...}."""


class TencentTemplate(_Template):
    id: Annotated[str, StringConstraints(pattern=r"^\d{1,12}$")]
    """The approved template's TemplateId, e.g. 1110."""
    params: list[TemplateField] = []
    """The fields for {1}, {2}, ... in order: TemplateParamSet."""


def _templates_not_empty(value: list[Any]) -> list[Any]:
    if not value:
        raise ValueError("give at least one template (Chinese SMS must use an approved template)")
    if value[-1].levels is not None or value[-1].kinds is not None:
        raise ValueError("the last template must match everything (no levels, no kinds): "
                         "every message needs a template")
    return value


class AliyunSmsSettings(_Model):
    """Alibaba Cloud SMS (dysmsapi 2017-05-25, SendSms)."""

    access_key_id: str | None = None
    access_key_secret: SecretStr | None = None
    sign_name: Annotated[str, Field(min_length=2, max_length=12)]
    """The approved signature (签名), without 【】."""
    endpoint: str = "dysmsapi.aliyuncs.com"
    """Host, or a URL such as http://127.0.0.1:8083 (the fake server in tests and the demo)."""
    max_param_chars: Annotated[int, Field(ge=1)] = 35
    """A template variable is cut to this many characters (Aliyun's limit for most variables)."""
    templates: list[AliyunTemplate]

    check_templates = field_validator("templates")(_templates_not_empty)


class TencentSmsSettings(_Model):
    """Tencent Cloud SMS (API 2021-01-11, SendSms)."""

    secret_id: str | None = None
    secret_key: SecretStr | None = None
    sms_sdk_app_id: Annotated[str, StringConstraints(pattern=r"^\d{6,12}$")]
    sign_name: Annotated[str, Field(min_length=2, max_length=12)]
    region: str = "ap-guangzhou"
    endpoint: str = "sms.tencentcloudapi.com"
    """Host, or a URL such as http://127.0.0.1:8084 (the fake server)."""
    max_param_chars: Annotated[int, Field(ge=1)] = 35
    templates: list[TencentTemplate]

    check_templates = field_validator("templates")(_templates_not_empty)


def _known_audiences(value: list[str]) -> list[str]:
    from config.notify import AUDIENCES

    unknown = [a for a in value if a not in AUDIENCES]
    if unknown:
        raise ValueError(f"unknown audience(s) {unknown} (one of {list(AUDIENCES)})")
    return value


class _Robot(_Model):
    id: Id
    name: str
    """The group's name as people know it, e.g. 县应急局值班群."""
    audiences: Annotated[list[str], Field(min_length=1)]
    """The audiences this group stands for: a routing rule that sends an audience to this channel
    posts once to every group listing it."""

    check_audiences = field_validator("audiences")(_known_audiences)


class WecomGroupRobot(_Robot):
    key: SecretStr | None = None
    """The ``key`` of the robot's webhook URL (…/cgi-bin/webhook/send?key=…)."""


class DingtalkGroupRobot(_Robot):
    access_token: SecretStr | None = None
    """The ``access_token`` of the robot's webhook URL."""
    secret: SecretStr | None = None
    """The robot's signing secret (加签, SEC…); without it the webhook is sent unsigned."""


def _unique_ids(value: list[Any]) -> list[Any]:
    ids = [r.id for r in value]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate robot id(s) {dupes}")
    return value


class WecomRobotSettings(_Model):
    base_url: str = "https://qyapi.weixin.qq.com"
    robots: Annotated[list[WecomGroupRobot], Field(min_length=1)]

    check_ids = field_validator("robots")(_unique_ids)


class DingtalkRobotSettings(_Model):
    base_url: str = "https://oapi.dingtalk.com"
    robots: Annotated[list[DingtalkGroupRobot], Field(min_length=1)]

    check_ids = field_validator("robots")(_unique_ids)


class ChannelsSettings(_Model):
    sms_aliyun: AliyunSmsSettings | None = None
    sms_tencent: TencentSmsSettings | None = None
    wecom_robot: WecomRobotSettings | None = None
    dingtalk_robot: DingtalkRobotSettings | None = None
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    """Bound of each HTTP request of these channels (connect and read), s."""


#: Environment variable -> setting under ``notify.channels``; each also as ``<VARIABLE>_FILE``.
CHANNEL_ENV: dict[str, tuple[str, str]] = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": ("sms_aliyun", "access_key_id"),
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ("sms_aliyun", "access_key_secret"),
    "HAZWATCH_ALIYUN_SMS_ENDPOINT": ("sms_aliyun", "endpoint"),
    "TENCENTCLOUD_SECRET_ID": ("sms_tencent", "secret_id"),
    "TENCENTCLOUD_SECRET_KEY": ("sms_tencent", "secret_key"),
    "HAZWATCH_TENCENT_SMS_ENDPOINT": ("sms_tencent", "endpoint"),
    "HAZWATCH_WECOM_BASE_URL": ("wecom_robot", "base_url"),
    "HAZWATCH_DINGTALK_BASE_URL": ("dingtalk_robot", "base_url"),
}
_ROBOT_SECRETS = {"wecom_robot": {"KEY": "key"}, "dingtalk_robot": {"TOKEN": "access_token", "SECRET": "secret"}}


def robot_env(section: str, robot_id: str, what: str) -> str:
    """The variable of one robot secret, e.g. ``HAZWATCH_DINGTALK_ROBOT_DUTY_SECRET``."""
    kind = section.split("_")[0].upper()
    return f"HAZWATCH_{kind}_ROBOT_{re.sub(r'[^A-Z0-9]', '_', robot_id.upper())}_{what}"


def channel_env(data: Mapping[str, Any]) -> list[tuple[str, tuple[str | int, ...]]]:
    """``(variable, path)`` of every channel variable that applies to ``data``, the mapping of
    hazwatch.yaml as read: the variables of :data:`CHANNEL_ENV` whose section is configured, and
    each configured robot's secrets (by its id). The configuration loader applies them with its
    other overrides (``config.loader``); a section is never created (its templates and robots
    cannot come from the environment)."""
    notify = data.get("notify")
    channels = notify.get("channels") if isinstance(notify, dict) else None
    if not isinstance(channels, dict):
        return []
    out: list[tuple[str, tuple[str | int, ...]]] = [
        (var, ("notify", "channels", section, key)) for var, (section, key) in CHANNEL_ENV.items()
        if isinstance(channels.get(section), dict)]
    for section, secrets in _ROBOT_SECRETS.items():
        robots = channels[section].get("robots") if isinstance(channels.get(section), dict) else None
        for i, robot in enumerate(robots if isinstance(robots, list) else []):
            if isinstance(robot, dict) and isinstance(robot.get("id"), str):
                out += [(robot_env(section, robot["id"], what), ("notify", "channels", section, "robots", i, key))
                        for what, key in secrets.items()]
    return out


def with_env(settings: ChannelsSettings, env: Mapping[str, str]) -> ChannelsSettings:
    """``settings`` with the values the environment gives, as the loader applies them (for
    settings built without the loader). Raises :class:`ChannelConfigError` naming the variable."""
    data = {"notify": {"channels": _unwrap(settings.model_dump(mode="python"))}}
    for var, path in channel_env(data):
        try:
            value = env_value(env, var)
        except EnvValueError as exc:
            reason = f"{var} and {exc.variable} are both set: set one of them" if exc.both_set else str(exc)
            raise ChannelConfigError(reason) from exc
        if value is not None:
            node: Any = data
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
    return ChannelsSettings.model_validate(data["notify"]["channels"])


def _unwrap(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value
