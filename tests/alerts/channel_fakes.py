"""Helpers for the channel tests: drive a provider fake's control API, resolve an unknown send
as the dispatcher does, wait for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx

from alerts.channels.base import Message, Outcome
from alerts.fakes.server import FakeServer

T = TypeVar("T")


def control(fake: FakeServer, method: str, path: str, **kwargs: Any) -> Any:
    response = httpx.request(method, fake.url + path, trust_env=False, **kwargs)
    response.raise_for_status()
    return response.json()


def fail(fake: FakeServer, mode: str, **rule: Any) -> None:
    control(fake, "POST", "/_fake/fail", json={"mode": mode, **rule})


def accepted(fake: FakeServer) -> list[dict[str, Any]]:
    return list(control(fake, "GET", "/_fake/messages")["messages"])


def reset(fake: FakeServer) -> FakeServer:
    control(fake, "POST", "/_fake/reset")
    return fake


def wait_for(probe: Callable[[], T], timeout_s: float = 10.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last: {value!r})")
        time.sleep(0.01)


def deliver(channel: Any, message: Message, since: datetime, attempts: int = 5) -> tuple[Outcome, list[Outcome]]:
    """Send until the outcome is settled, as the dispatcher does: an unknown is looked up with
    ``find_sent`` (when the channel can) and resent only when the provider has no such message;
    a retry is resent (without waiting: the tests look at outcomes, not at timing).
    Returns the settled outcome and every outcome on the way."""
    seen: list[Outcome] = []
    for _ in range(attempts):
        outcome = channel.send(message)
        seen.append(outcome)
        if outcome.status == "unknown" and channel.can_look_up:
            found = channel.find_sent(message, since)
            if found:
                return Outcome("sent", provider_id=found), seen
            continue
        if outcome.status in ("sent", "failed"):
            return outcome, seen
    return seen[-1], seen
