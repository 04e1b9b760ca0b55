"""``wecom-robot``: a WeCom (企业微信) group robot, one markdown message per post.

``POST {base_url}/cgi-bin/webhook/send?key=KEY`` with ``{"msgtype": "markdown", "markdown":
{"content": …}}``; WeCom answers ``{"errcode": 0, "errmsg": "ok"}`` and no message id. The
address of a message is the robot's ``id`` in ``notify.channels.wecom_robot.robots``.

| WeCom                                               | outcome                              |
|-----------------------------------------------------|--------------------------------------|
| errcode 0                                           | sent (no provider id)                |
| 45009 api freq out of limit (20 a minute per robot) | retry after 60 s                     |
| -1 system busy; HTTP 429 / 503                      | retry                                |
| 93000 invalid webhook url (key removed), 93008      | retry after 60 s (every message      |
| robot not in the group                              | waits for a fix, as bad credentials) |
| any other errcode (e.g. 40058 content too long)     | failed                               |
| other HTTP 5xx, read timeout, dropped connection    | unknown, posted again (at least once:|
|                                                     | ``alerts.channels.robot``)           |
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

import httpx

from alerts.channels.base import Message, Outcome
from alerts.channels.robot import markdown, post
from config.channels import ChannelConfigError, WecomRobotSettings

__all__ = ["WecomRobot", "outcome_of_errcode"]


def outcome_of_errcode(code: int, message: str) -> Outcome:
    error = f"errcode {code}: {message}"
    if code == 45009:
        return Outcome("retry", retry_after_s=60.0, error_code=str(code), error=error)
    if code == -1:
        return Outcome("retry", error_code=str(code), error=error)
    if code in (93000, 93008):
        return Outcome("retry", retry_after_s=60.0, error_code=str(code), error=error)
    return Outcome("failed", error_code=str(code), error=error)


class WecomRobot:
    name: ClassVar[str] = "wecom-robot"
    can_look_up: ClassVar[bool] = False

    def __init__(self, settings: WecomRobotSettings, timeout_s: float = 10.0) -> None:
        missing = [r.id for r in settings.robots if r.key is None]
        if missing:
            raise ChannelConfigError(f"wecom-robot: robot(s) {missing} have no key "
                                     "(notify.channels.wecom_robot.robots[].key or HAZWATCH_WECOM_ROBOT_<ID>_KEY)")
        self.settings = settings
        self._robots = {r.id: r for r in settings.robots}
        self._client = httpx.Client(timeout=timeout_s)

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str]) -> Self:
        """From the whole ``config.models.Settings``, its environment (secrets, endpoints) applied
        by the configuration loader (``config.channels.channel_env``); the registry calls this."""
        channels = settings.notify.channels
        if channels.wecom_robot is None:
            raise ChannelConfigError("wecom-robot is used but notify.channels.wecom_robot is not configured")
        return cls(channels.wecom_robot, channels.timeout_s)

    def send(self, message: Message) -> Outcome:
        robot = self._robots.get(message.to)
        if robot is None or robot.key is None:
            return Outcome("failed", error=f"no WeCom robot {message.to!r} is configured")
        payload = {"msgtype": "markdown", "markdown": {"content": markdown(message)}}
        return post(self._client, f"{self.settings.base_url.rstrip('/')}/cgi-bin/webhook/send",
                    {"key": robot.key.get_secret_value()}, payload, outcome_of_errcode)

    def find_sent(self, message: Message, since: datetime) -> str | None:
        return None  # a webhook keeps no list: an unknown post is posted again

    def close(self) -> None:
        self._client.close()
