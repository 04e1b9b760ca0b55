"""``cap``: the CAP 1.2 broadcast over MQTT for loudspeaker gateways, behind the channel protocol.

The address is a zone id; the text is the CAP document (built and identified by
:mod:`alerts.notify.broadcast`, which also decides what an all-clear references). It is published at
QoS 1 to ``hw/v1/broadcast/{zone}/cap`` (``alerts.service.CapPublisher``) and counts as sent when
the broker acknowledges it. An unacknowledged publish is "unknown" and is published again: a
repeated CAP document is harmless (gateways recognise its identifier), so the channel needs no
look-up. The provider id is the CAP identifier (``Message.key``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar, Self

from alerts.channels.base import Message, Outcome

__all__ = ["CapBroadcast"]


class CapBroadcast:
    name: ClassVar[str] = "cap"
    can_look_up: ClassVar[bool] = False

    def __init__(self, publish: Callable[[str, bytes], None]) -> None:
        self.publish = publish

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str]) -> Self:
        """A publisher connected to ``settings.mqtt`` (the alerts service's own CAP publisher)."""
        from alerts.service import CapPublisher

        return cls(CapPublisher(settings.mqtt).publish)

    def send(self, message: Message) -> Outcome:
        try:
            self.publish(message.to, message.text.encode("utf-8"))
        except TimeoutError as exc:
            return Outcome("unknown", error=str(exc))
        except (OSError, ValueError) as exc:  # not connected, or refused by the client
            return Outcome("retry", error=f"{type(exc).__name__}: {exc}")
        return Outcome("sent", provider_id=message.key or None)

    def find_sent(self, message: Message, since: datetime) -> str | None:
        return None  # publishing again is harmless: same identifier
