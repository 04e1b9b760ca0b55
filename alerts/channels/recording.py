"""``RecordingChannel``: a channel for tests that records what it is given and answers what it
is told to, as httpx ships ``MockTransport`` beside its real transport.

    channel = RecordingChannel(outcomes=[Outcome("retry", retry_after_s=60), Outcome("unknown")])
    channel.send(msg)      # -> retry after 60 s; nothing recorded as taken
    channel.send(msg)      # -> unknown; recorded as taken (the provider got it, the caller did not hear)
    channel.send(msg)      # -> sent (the default once the script is used up)
    channel.sent           # what the "provider" took: two messages
    channel.find_sent(msg, since)   # -> the provider id of the first taken copy

An outcome ``sent`` or ``unknown`` counts as taken (unknown is the crash in flight: the message
arrived, the answer did not), ``retry`` and ``failed`` as not taken. ``respond`` may be a
function of the message instead of a script.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

from alerts.channels.base import ChannelError, Message, Outcome

__all__ = ["RecordingChannel", "Taken"]


@dataclass(frozen=True)
class Taken:
    message: Message
    provider_id: str
    at: datetime


class RecordingChannel:
    name: ClassVar[str] = "recording"
    can_look_up: ClassVar[bool] = True

    def __init__(self, outcomes: Iterable[Outcome] = (), *,
                 respond: Callable[[Message], Outcome] | None = None, lookup_fails: bool = False) -> None:
        self._script = list(outcomes)
        self._respond = respond
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.lookup_fails = lookup_fails
        self.calls: list[Message] = []
        """Every message given to ``send``, in order."""
        self.sent: list[Taken] = []
        """What the provider took (sent or unknown), in order."""

    @classmethod
    def from_settings(cls, settings: Any, env: Mapping[str, str]) -> Self:
        return cls()

    def send(self, message: Message) -> Outcome:
        with self._lock:
            self.calls.append(message)
            if self._script:
                outcome = self._script.pop(0)
            elif self._respond is not None:
                outcome = self._respond(message)
            else:
                outcome = Outcome("sent")
            if outcome.status in ("sent", "unknown"):
                pid = outcome.provider_id or f"REC{next(self._ids):06d}"
                self.sent.append(Taken(message, pid, datetime.now(UTC)))
                if outcome.status == "sent":
                    outcome = Outcome("sent", provider_id=pid)
            return outcome

    def find_sent(self, message: Message, since: datetime) -> str | None:
        if self.lookup_fails:
            raise ChannelError("the recording channel was told to fail look-ups")
        since = since.replace(tzinfo=UTC) if since.tzinfo is None else since
        with self._lock:
            for taken in self.sent:
                same = taken.message.key == message.key if message.key else taken.message.text == message.text
                if taken.message.to == message.to and same and taken.at >= since:
                    return taken.provider_id
        return None
