"""Ingest's inbox: what paho's thread has read and the main thread has not yet sent to Kafka.

It holds at most ``limit`` messages (a read pass may overshoot it once). When it is full, paho's
thread waits before it reads more: the socket stops being read, TCP's window closes, and Mosquitto
keeps the rest in ingest's session, in flight up to its window (``max_inflight_messages`` 50,000,
which in practice keeps the inbox below that) and queued behind it (``max_queued_messages``; past
that bound the broker drops, which ``ingest.broker_watch`` reports). Meanwhile paho's thread still
writes the PUBACKs and pings (``BatchingClient.stay_alive``), so the connection lasts. Being full is
said loudly: a WARNING when it starts and when it ends, the gauges
``hazwatch_ingest_inbox_messages`` and ``hazwatch_ingest_overloaded``, and the counter
``hazwatch_ingest_overloaded_seconds_total``; the state ends when the inbox is down to half its
limit (docs/ARCHITECTURE.md §5).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from prometheus_client import Counter, Gauge

from ingest.mqtt_client import Received

__all__ = ["Arrival", "Inbox"]

log = logging.getLogger("hazwatch.ingest")

INBOX_MESSAGES = Gauge("hazwatch_ingest_inbox_messages", "MQTT messages read and not yet in Kafka")
OVERLOADED = Gauge("hazwatch_ingest_overloaded", "1 while the inbox is full and ingest has stopped reading MQTT")
OVERLOADED_SECONDS = Counter("hazwatch_ingest_overloaded_seconds_total",
                             "Seconds the inbox was full (MQTT left unread, kept by the broker)")


class Arrival(NamedTuple):
    """The messages of one read pass of paho's thread."""

    connection: int
    """Which MQTT connection brought them: a PUBACK is only valid on that one."""
    received_ms: int
    messages: list[Received]


class Inbox:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the inbox must hold at least 1 message, got {limit}")
        self.limit = limit
        self._arrivals: deque[Arrival] = deque()
        self._count = 0
        self._cond = threading.Condition()
        self._full_since: float | None = None

    def __len__(self) -> int:
        return self._count

    @property
    def full(self) -> bool:
        return self._full_since is not None

    def put(self, arrival: Arrival, stopping: Callable[[], bool], idle: Callable[[], None] = lambda: None) -> None:
        """Add ``arrival`` once there is room (whatever its size: a pass is never split); while it
        waits, call ``idle`` every 0.5 s (paho's thread keeps its connection alive)."""
        with self._cond:
            while self._count >= self.limit and not stopping():
                if self._full_since is None:
                    self._full_since = time.monotonic()
                    OVERLOADED.set(1)
                    log.warning("ingest is overloaded: %d messages wait for Kafka; MQTT is left unread "
                                "(the broker keeps the rest) until they are sent", self._count)
                self._cond.wait(0.5)
                idle()
            self._arrivals.append(arrival)
            self._count += len(arrival.messages)
            INBOX_MESSAGES.set(self._count)
            self._cond.notify_all()

    def take(self, max_messages: int, timeout: float, gather_s: float = 0.0) -> list[Arrival]:
        """The oldest arrivals, about ``max_messages`` messages (at least one arrival), waiting up to
        ``timeout`` s for the first; [] if none came. With ``gather_s``, what arrives until the
        oldest arrival is that old comes along (unless ``max_messages`` are there before)."""
        with self._cond:
            if not self._arrivals:
                self._cond.wait(timeout)
            if self._arrivals and gather_s > 0:
                deadline = self._arrivals[0].received_ms / 1000 + gather_s
                while self._count < max_messages and 0 < (remaining := deadline - time.time()) <= gather_s:
                    self._cond.wait(remaining)
            taken: list[Arrival] = []
            n = 0
            while self._arrivals and (not taken or n + len(self._arrivals[0].messages) <= max_messages):
                arrival = self._arrivals.popleft()
                taken.append(arrival)
                n += len(arrival.messages)
            self._count -= n
            INBOX_MESSAGES.set(self._count)
            if self._full_since is not None and self._count <= self.limit // 2:  # not at every take
                seconds = time.monotonic() - self._full_since
                self._full_since = None
                OVERLOADED.set(0)
                OVERLOADED_SECONDS.inc(seconds)
                log.warning("ingest is no longer overloaded, after %.1f s; %d messages wait", seconds, self._count)
            if n:
                self._cond.notify_all()
            return taken
