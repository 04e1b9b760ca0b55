"""A stage of the notify path, after Prometheus Alertmanager's ``notify.Stage``:
``exec(ctx, rows) -> rows``.

``rows`` are outbox rows that go out as one message (one recipient, one channel). A stage returns
the rows that go on to the next stage, or an empty list when it has finished with them (sent,
suppressed, deferred or taken by another process). ``ctx`` carries the send's ``now`` and what
the earlier stages decided, so that each stage reads what it needs and nothing else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from alerts.channels.base import Outcome
from alerts.noise import RateDecision

if TYPE_CHECKING:
    from alerts.store import Notification

__all__ = ["Ctx", "MultiStage", "Next", "Route", "Stage"]


@dataclass(frozen=True)
class Next:
    """What becomes of rows after a send: their status and, unless final, when to look again."""

    status: str
    """``sent`` | ``failed`` (final) | ``pending`` (send again) | ``unknown`` (ask the provider)."""
    not_before: dt.datetime | None = None


@dataclass
class Ctx:
    """One send's context; stages fill it in order."""

    now: dt.datetime
    claimed: Notification | None = None
    """The row the dispatcher claimed (the send's own; grouping may put earlier rows first)."""
    count: int = 0
    """Messages sent to the address within the rate-limit window (rate-limit stage)."""
    decision: RateDecision = "send"
    body: str | None = None
    """The rendered text (render stage)."""
    outcome: Outcome | None = None
    """What the channel answered (send stage)."""
    next: Next | None = None
    """What becomes of the rows (retry stage)."""


class Stage(Protocol):
    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]: ...


class MultiStage:
    """Stages run in order; an empty result ends the run."""

    def __init__(self, *stages: Stage) -> None:
        self.stages = stages

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        for stage in self.stages:
            if not rows:
                break
            rows = stage.exec(ctx, rows)
        return rows


class Route:
    """Chooses the pipeline for a send by its first row (Alertmanager's ``RoutingStage``)."""

    def __init__(self, pick: Callable[[Notification], str], pipelines: Mapping[str, Stage]) -> None:
        self.pick, self.pipelines = pick, dict(pipelines)

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        return self.pipelines[self.pick(rows[0])].exec(ctx, rows)
