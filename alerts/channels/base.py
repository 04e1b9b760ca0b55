"""The channel protocol: one message in, one outcome out.

A channel delivers a :class:`Message` to one address (a phone number, a zone, a chat group) and
answers an :class:`Outcome`; it never raises for provider or network errors. What the outcome
lets the caller (the dispatcher's retry stage) do:

| status    | meaning                                                  | the caller                  |
|-----------|----------------------------------------------------------|-----------------------------|
| sent      | the provider took it; ``provider_id`` is its id, if any  | records it                  |
| retry     | not taken, may be sent again after ``retry_after_s``     | backs off (at least that    |
|           | (the "retry-after" outcome; None: the caller's backoff)  | long), resends              |
| failed    | refused for good (invalid number, template, signature)   | never resends               |
| unknown   | may or may not have been taken (read timeout, dropped    | asks ``find_sent`` before   |
|           | connection, a 5xx after the request was read)            | resending, see below        |

Resolving "unknown" (exactly-once where the provider allows it): a channel whose provider can
list what it accepted (``can_look_up``) answers ``find_sent(message, since)`` with the provider id
of a matching message, or None when there is none; the caller resends only on None. A channel
whose provider keeps no such list (group robots) has ``can_look_up = False``: the caller resends
an unknown message, at least once rather than at most once, because a warning read twice by a
duty group is better than one never posted. Each channel module says which it is and why.

``Message.key`` is the outbox's idempotency key; providers that carry a caller's id through to
their records (Aliyun ``OutId``, Tencent ``SessionContext``) get it, and ``find_sent`` matches on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Literal, Protocol, runtime_checkable

__all__ = ["Channel", "ChannelError", "Message", "Outcome", "Receipt", "Status"]

Status = Literal["sent", "retry", "failed", "unknown"]


class ChannelError(Exception):
    """The provider could not be asked (``find_sent``); the caller must not assume "not sent"."""


@dataclass(frozen=True)
class Message:
    """One message to one address.

    ``text`` is the rendered text in the recipient's language (free-text channels send it);
    ``title`` a short heading (robots' markdown title); ``fields`` the named values a provider
    template is filled from (``alerts.channels.templates``); ``level`` and ``kind`` choose the
    template (e.g. ``red`` / ``raised``).
    """

    to: str
    text: str
    key: str = ""
    level: str = ""
    kind: str = ""
    title: str = ""
    language: str = "zh-CN"
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What one send did. ``error_code`` is the provider's code as text (e.g.
    ``isv.BUSINESS_LIMIT_CONTROL``, ``45009``)."""

    status: Status
    provider_id: str | None = None
    retry_after_s: float | None = None
    error_code: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Receipt:
    """The handset's delivery receipt of a sent message, as the provider reports it:
    ``delivered``, or ``undelivered`` with the provider's code (``error_code``, text)."""

    status: Literal["delivered", "undelivered"]
    error_code: str | None = None
    error: str | None = None


@runtime_checkable
class Channel(Protocol):
    """What every channel offers; see the module docstring for the outcomes."""

    name: ClassVar[str]
    can_look_up: ClassVar[bool]

    def send(self, message: Message) -> Outcome: ...

    def find_sent(self, message: Message, since: datetime) -> str | None:
        """The provider id of ``message`` if the provider took it at or after ``since`` (aware or
        naive UTC), else None. Raises :class:`ChannelError` when the provider cannot be asked."""
        ...
