"""Group and dedup: the rows that go out as one message with the row the dispatcher claimed.

A recipient's pending rows of one site and channel (one ``group_key``) go out together: earlier
rows always (a recipient never reads the all-clear before the warning, even when the warning is
in retry backoff or held by quiet hours), later ones when they were planned within the grouping
window. Nothing goes while an earlier send of the group is unresolved (``sending``/``unknown``):
that is the dispatch side of the outbox's dedup, the other being its unique idempotency key.
叫应 steps go alone, and those an acknowledgement answered before they were sent are dropped.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from alerts.escalation import STEP_KINDS
from alerts.notify.deps import Deps
from alerts.notify.record import finish
from alerts.notify.stage import Ctx
from alerts.store import Episode, Notification

__all__ = ["DropAnswered", "Group"]


class Group:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        first = rows[0]
        if first.kind in STEP_KINDS:
            return rows
        horizon = ctx.now + dt.timedelta(seconds=self.deps.config.settings.notify.group_wait_s)
        with self.deps.store.session() as s:
            group = list(s.scalars(select(Notification).where(
                Notification.group_key == first.group_key,
                Notification.status.in_(("pending", "sending", "unknown"))).order_by(Notification.id)))
        if any(r.status != "pending" and r.id < first.id for r in group):
            return []  # wait until the earlier send is reconciled
        wanted = [r.id for r in group if r.status == "pending" and (r.id <= first.id or r.not_before <= horizon)]
        held = self.deps.claims.take(wanted, self.deps.clock(), "pending")
        if len([r for r in held if r.id < first.id]) < len([i for i in wanted if i < first.id]):
            return []  # another process holds an earlier row: it goes first
        return held


class DropAnswered:
    """叫应 steps planned before an acknowledgement are not sent after it."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        steps = [r for r in rows if r.kind in STEP_KINDS]
        if not steps:
            return rows
        with self.deps.store.session() as s:
            states = dict(s.execute(select(Episode.id, Episode.state).where(
                Episode.id.in_({r.episode for r in steps}))).all())
        stale = [r for r in steps if states.get(r.episode) != "active"]
        if stale:
            finish(self.deps, stale, "suppressed", suppressed_reason="answered before it was sent")
        return [r for r in rows if r not in stale]
