"""The warning event (``hazwatch.warnings``): one per level change, the contract between the rules
worker and its readers, alerts, the console and the history writer (docs/ARCHITECTURE.md §14.4)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

__all__ = ["EventKind", "WarningEvent", "episode_id", "event_kind"]

EventKind = Literal["raised", "escalated", "deescalated", "cleared"]

_EPISODE_NS = uuid.UUID("6f1c2a7e-3b5d-4e0f-9a8c-1d2e3f405162")


def episode_id(subject: str, rule: str, raised_ts: int) -> str:
    """A stable episode id: the same subject, rule and raising reading give the same id.

    Deterministic, so a rules worker that processes a reading again after a crash emits the
    same event, which the alerts outbox then recognises as already handled.
    """
    return str(uuid.uuid5(_EPISODE_NS, f"{subject}|{rule}|{raised_ts}"))


def event_kind(previous_rank: int, level_rank: int) -> EventKind:
    if previous_rank == 0:
        return "raised"
    if level_rank == 0:
        return "cleared"
    return "escalated" if level_rank > previous_rank else "deescalated"


@dataclass(frozen=True, slots=True)
class WarningEvent:
    episode: str
    site: str
    subject: str
    """``site/sensor`` for a sensor rule."""
    rule: str
    kind: EventKind
    level: str
    previous: str
    ts: int
    """Epoch ms of the reading that decided it."""
    emitted_at: int
    """Epoch ms, wall clock."""
    value: float
    threshold: float | None
    unit: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> WarningEvent:
        """Raises ``ValueError`` (orjson's, or a ``TypeError`` turned into one) when ``data`` is
        not a warning event."""
        obj = orjson.loads(data)
        if not isinstance(obj, dict):
            raise ValueError(f"a warning event is an object, not {type(obj).__name__}")
        try:
            return cls(**obj)
        except TypeError as exc:  # a key missing or unknown
            raise ValueError(f"not a warning event: {exc}") from None

    @property
    def sensor(self) -> str:
        return self.subject.split("/", 1)[1] if "/" in self.subject else self.subject
