"""``dingtalk-robot``: a DingTalk (钉钉) group robot, one markdown message per post, signed.

``POST {base_url}/robot/send?access_token=TOKEN&timestamp=MS&sign=SIGN`` with ``{"msgtype":
"markdown", "markdown": {"title": …, "text": …}}``. A robot with the 加签 security setting
needs ``sign`` = url-encoded base64 of HMAC-SHA256(key = secret, message = "timestamp\\nsecret"),
the timestamp in milliseconds and within an hour of DingTalk's clock (:func:`sign`). DingTalk
answers ``{"errcode": 0, "errmsg": "ok"}`` and no message id. The address of a message is the
robot's ``id`` in ``notify.channels.dingtalk_robot.robots``.

| DingTalk                                                 | outcome                         |
|----------------------------------------------------------|---------------------------------|
| errcode 0                                                | sent (no provider id)           |
| 130101 send too fast (20 a minute per robot), 130102     | retry after 60 s                |
| -1 system busy; HTTP 429 / 503                           | retry                           |
| 310000 sign not match / keyword / IP whitelist, 300001   | retry after 60 s (every message |
| and 400101 token not found, 300005 token invalid         | waits for a fix)                |
| any other errcode (e.g. 40035 missing parameter)         | failed                          |
| other HTTP 5xx, read timeout, dropped connection         | unknown, posted again (at least |
|                                                          | once: ``alerts.channels.robot``)|
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

import httpx

from alerts.channels.base import Message, Outcome
from alerts.channels.robot import markdown, post
from config.channels import ChannelConfigError, DingtalkRobotSettings

__all__ = ["DingtalkRobot", "outcome_of_errcode", "sign"]


def sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk's signature of a webhook call, base64 (``httpx`` url-encodes the parameter)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def outcome_of_errcode(code: int, message: str) -> Outcome:
    error = f"errcode {code}: {message}"
    if code in (130101, 130102):
        return Outcome("retry", retry_after_s=60.0, error_code=str(code), error=error)
    if code == -1:
        return Outcome("retry", error_code=str(code), error=error)
    if code in (310000, 300001, 300005, 400101):
        return Outcome("retry", retry_after_s=60.0, error_code=str(code), error=error)
    return Outcome("failed", error_code=str(code), error=error)


class DingtalkRobot:
    name: ClassVar[str] = "dingtalk-robot"
    can_look_up: ClassVar[bool] = False

    def __init__(self, settings: DingtalkRobotSettings, timeout_s: float = 10.0,
                 clock_ms: Any = lambda: int(time.time() * 1000)) -> None:
        missing = [r.id for r in settings.robots if r.access_token is None]
        if missing:
            raise ChannelConfigError(f"dingtalk-robot: robot(s) {missing} have no access_token (notify.channels."
                                     "dingtalk_robot.robots[].access_token or HAZWATCH_DINGTALK_ROBOT_<ID>_TOKEN)")
        self.settings = settings
        self._robots = {r.id: r for r in settings.robots}
        self._client = httpx.Client(timeout=timeout_s)
        self._clock_ms = clock_ms

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str]) -> Self:
        """From the whole ``config.models.Settings``, its environment (secrets, endpoints) applied
        by the configuration loader (``config.channels.channel_env``); the registry calls this."""
        channels = settings.notify.channels
        if channels.dingtalk_robot is None:
            raise ChannelConfigError("dingtalk-robot is used but notify.channels.dingtalk_robot is not configured")
        return cls(channels.dingtalk_robot, channels.timeout_s)

    def send(self, message: Message) -> Outcome:
        robot = self._robots.get(message.to)
        if robot is None or robot.access_token is None:
            return Outcome("failed", error=f"no DingTalk robot {message.to!r} is configured")
        params = {"access_token": robot.access_token.get_secret_value()}
        if robot.secret is not None:
            now = self._clock_ms()
            params.update(timestamp=str(now), sign=sign(now, robot.secret.get_secret_value()))
        title = message.title or message.text[:20]
        payload = {"msgtype": "markdown", "markdown": {"title": title, "text": markdown(message)}}
        return post(self._client, f"{self.settings.base_url.rstrip('/')}/robot/send", params, payload,
                    outcome_of_errcode)

    def find_sent(self, message: Message, since: datetime) -> str | None:
        return None  # a webhook keeps no list: an unknown post is posted again

    def close(self) -> None:
        self._client.close()
