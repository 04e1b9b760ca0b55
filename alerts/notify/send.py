"""Send: the rows are marked ``sending`` in a committed transaction of their own, then the
channel is called once. What it answered goes into ``ctx.outcome``; the channel alarm hears of
it (a refusal of this one message says nothing of the channel)."""

from __future__ import annotations

import logging

from alerts.channel_message import channel_message
from alerts.notify.deps import TWILIO, Deps
from alerts.notify.stage import Ctx
from alerts.segments import segments
from alerts.store import Notification

__all__ = ["Send"]

log = logging.getLogger("hazwatch.alerts")


class Send:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        d, first, body = self.deps, rows[0], ctx.body or ""
        if not d.claims.begin_send([r.id for r in rows], d.clock(), body=body, segments=segments(body),
                                   attempts=first.attempts + 1, delivery_status=None):
            log.warning("%s to %s: taken over by another process before sending", first.channel, first.recipient)
            return []
        message = channel_message(rows, body, d.config, text_only=first.channel in TWILIO)
        ctx.outcome = d.channel(first.channel).send(message)
        ctx.now = d.clock()
        if ctx.outcome.status == "sent":
            d.alarms.succeeded(first.channel)
        elif ctx.outcome.status != "failed":
            d.alarms.failed(first.channel, f"{ctx.outcome.error_code or ''} {ctx.outcome.error or ''}".strip())
        return rows
