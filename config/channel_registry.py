"""The channel registry's table: every channel hazwatch can send through, its kind, its class
and what it needs configured.

Adding a channel is one module in ``alerts/channels/`` (a class with ``name``, ``can_look_up``,
``send``, ``find_sent`` and ``from_settings(settings, env)``, see ``alerts.channels.base``) plus
one line in :data:`REGISTRY` (and its settings, if any, in ``config.channels``: the line names
their ``section`` and the keys it ``required``, which ``hazwatch check-config`` checks). The
configuration's allowed channel names (``config.notify.Channel``) are derived from this table,
``hazwatch channels`` lists it, and ``alerts.channels.registry`` builds channels from it. It lives
in ``config`` because the configuration must not import ``alerts`` (ARCHITECTURE.md §14.1): the
classes are named by ``module:Class`` and imported only when a channel is built.

Kinds, which decide what a channel's address is (``alerts.audience.members``):

- ``sms``: a person, by E.164 number (recipients and zone subscribers);
- ``broadcast``: an area, by zone id (the ``residents`` audience only);
- ``group``: a chat group, by the robot's id in the channel's settings (every robot that lists
  the audience).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ALIASES", "CHANNEL_NAMES", "REGISTRY", "ChannelSpec", "Kind", "canonical", "spec"]

Kind = Literal["sms", "broadcast", "group"]


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    kind: Kind
    target: str
    """``module:Class`` of the implementation."""
    needs: tuple[str, ...]
    """What must be configured: settings paths, with their environment variables."""
    summary: str
    label: tuple[str, str] = ("", "")
    """What people call it, zh-CN and en (the channel alarm's texts); empty: the name."""
    section: str | None = None
    """Its settings: the key under ``notify.channels`` (``config.channels.ChannelsSettings``);
    None: configured elsewhere (Twilio's ``sms``, CAP's ``cap`` and ``mqtt``)."""
    required: tuple[str, ...] = ()
    """Keys of ``section`` that are optional in the file (secrets may come from the environment)
    but needed to send; ``robots[].key``: of every robot. ``hazwatch check-config`` reports a
    routed channel without them (``config.channel_checks``)."""


REGISTRY: tuple[ChannelSpec, ...] = (
    ChannelSpec("sms-twilio", "sms", "alerts.channels.sms_twilio:TwilioSms",
                ("sms.account_sid (TWILIO_ACCOUNT_SID)", "sms.auth_token (TWILIO_AUTH_TOKEN)", "sms.from_number"),
                "Twilio Messages API, free text"),
    ChannelSpec("cap", "broadcast", "alerts.channels.cap_mqtt:CapBroadcast",
                ("mqtt.url (HAZWATCH_MQTT_URL)", "cap.sender"), "CAP 1.2 over MQTT to loudspeaker gateways, red only"),
    ChannelSpec("sms-aliyun", "sms", "alerts.channels.sms_aliyun:AliyunSms",
                ("notify.channels.sms_aliyun.access_key_id (ALIBABA_CLOUD_ACCESS_KEY_ID)",
                 "notify.channels.sms_aliyun.access_key_secret (ALIBABA_CLOUD_ACCESS_KEY_SECRET)",
                 "notify.channels.sms_aliyun.sign_name", "notify.channels.sms_aliyun.templates"),
                "Alibaba Cloud SMS, approved templates", ("阿里云短信", "Aliyun SMS"),
                "sms_aliyun", ("access_key_id", "access_key_secret")),
    ChannelSpec("sms-tencent", "sms", "alerts.channels.sms_tencent:TencentSms",
                ("notify.channels.sms_tencent.secret_id (TENCENTCLOUD_SECRET_ID)",
                 "notify.channels.sms_tencent.secret_key (TENCENTCLOUD_SECRET_KEY)",
                 "notify.channels.sms_tencent.sms_sdk_app_id", "notify.channels.sms_tencent.sign_name",
                 "notify.channels.sms_tencent.templates"),
                "Tencent Cloud SMS, approved templates", ("腾讯云短信", "Tencent Cloud SMS"),
                "sms_tencent", ("secret_id", "secret_key")),
    ChannelSpec("wecom-robot", "group", "alerts.channels.wecom_robot:WecomRobot",
                ("notify.channels.wecom_robot.robots[].key (HAZWATCH_WECOM_ROBOT_<ID>_KEY)",
                 "notify.channels.wecom_robot.robots[].audiences"),
                "WeCom (企业微信) group robot webhook, markdown", ("企业微信群机器人", "WeCom group robot"),
                "wecom_robot", ("robots[].key",)),
    ChannelSpec("dingtalk-robot", "group", "alerts.channels.dingtalk_robot:DingtalkRobot",
                ("notify.channels.dingtalk_robot.robots[].access_token (HAZWATCH_DINGTALK_ROBOT_<ID>_TOKEN)",
                 "notify.channels.dingtalk_robot.robots[].secret (HAZWATCH_DINGTALK_ROBOT_<ID>_SECRET)",
                 "notify.channels.dingtalk_robot.robots[].audiences"),
                "DingTalk (钉钉) group robot webhook, markdown, signed", ("钉钉群机器人", "DingTalk group robot"),
                "dingtalk_robot", ("robots[].access_token",)),
)

#: Names kept for configurations written before the registry: ``sms`` is Twilio SMS.
ALIASES: dict[str, str] = {"sms": "sms-twilio"}

#: Every name a configuration may use, aliases first.
CHANNEL_NAMES: tuple[str, ...] = (*ALIASES, *(s.name for s in REGISTRY))

_BY_NAME = {s.name: s for s in REGISTRY}


def canonical(name: str) -> str:
    """The registry name of ``name`` (an alias resolved). Raises ``KeyError`` for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in _BY_NAME:
        raise KeyError(f"unknown channel {name!r} (one of {list(CHANNEL_NAMES)})")
    return name


def spec(name: str) -> ChannelSpec:
    return _BY_NAME[canonical(name)]
