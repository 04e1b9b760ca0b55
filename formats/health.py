"""``hazwatch.health``: what is known of the sensors and devices themselves, keyed by site id
(docs/ARCHITECTURE.md §14.5). Two kinds of record:

- :class:`SensorHealth`, from the rules worker: one sensor's data-quality check (``offline``,
  ``stuck``, ``out_of_range``, ``spike``) or maintenance window changing state::

      {"site": "CH-001", "subject": "CH-001/GT-101", "sensor": "GT-101", "check": "offline",
       "state": "fault", "ts": 1796000000000, "detected_at": 1796000015000, "value": 12.5,
       "detail": {"active": ["offline"], "episode_ts": 1796000000000, ...}}

  ``state`` is ``fault`` or ``ok`` for a check (``spike`` for a spike), ``start`` or ``end`` for
  a maintenance window (``check: maintenance``); ``detail.active`` lists the checks still in
  fault after this one;
- :class:`Presence`, from ingest: a device or gateway going ``online`` or ``offline`` (its
  retained status message, or its last will)::

      {"kind": "presence", "site": "RG-001", "status": "offline", "ts": 1796000000000, "source": "mqtt"}

The producers encode with :func:`encode`, the readers (alerts, the console, the history writer)
decode with :func:`decode`; nothing else reads or writes this JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from formats.objects import json_object

__all__ = ["HealthError", "HealthEvent", "Presence", "SensorHealth", "as_dict", "decode", "encode"]


class HealthError(ValueError):
    """A ``hazwatch.health`` value that is not a health event; the message says why."""


@dataclass(frozen=True, slots=True)
class SensorHealth:
    site: str
    subject: str
    """``site/sensor``."""
    sensor: str
    check: str
    state: str
    ts: int
    """Epoch ms of the reading (or, for offline, of the moment) it is about."""
    detected_at: int
    """Epoch ms, wall clock, when the rules worker found it."""
    value: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> list[str]:
        """The checks in fault after this event (``detail.active``), empty when none or unknown."""
        active = self.detail.get("active")
        return [str(c) for c in active] if isinstance(active, list) else []


@dataclass(frozen=True, slots=True)
class Presence:
    site: str
    status: str
    """``online`` or ``offline``."""
    ts: int
    source: str = "mqtt"


HealthEvent = SensorHealth | Presence


def as_dict(event: HealthEvent) -> dict[str, Any]:
    """The record as it is on the topic (a presence record says ``"kind": "presence"``)."""
    return {"kind": "presence", **asdict(event)} if isinstance(event, Presence) else asdict(event)


def encode(event: HealthEvent) -> bytes:
    return orjson.dumps(as_dict(event))


def decode(raw: bytes | str) -> HealthEvent:
    """One ``hazwatch.health`` value; raises :class:`HealthError` when it is none of the two."""
    obj = json_object(raw, HealthError)
    kind = obj.pop("kind", None)
    try:
        event: HealthEvent = Presence(**obj) if kind == "presence" else SensorHealth(**obj)
    except TypeError as exc:  # a key missing or unknown
        raise HealthError(f"not a {kind or 'sensor'} health event: {exc}") from None
    if not isinstance(event.site, str) or not isinstance(event.ts, int):
        raise HealthError(f"site or ts of the wrong type: {event.site!r}, {event.ts!r}")
    return event
