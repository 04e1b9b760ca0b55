"""Reconcile: a send whose outcome is unknown (a timeout, a crash in flight) is looked up at the
provider before anything is sent again, so a crash or a timeout never causes a second SMS.

Found: the rows are sent, with the provider's id. Not found, or never rendered: they are pending
again and go out on a later pass. A provider that keeps no list of what it took (the group
robots, ``can_look_up`` false) gets it again: at least once. A provider that cannot be asked now
leaves the rows ``unknown``, asked again after :data:`alerts.notify.retry.RECONCILE_AFTER_S`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from alerts.channel_message import channel_message
from alerts.channels.base import ChannelError
from alerts.channels.sms import SmsChannelError
from alerts.notify.deps import TWILIO, Deps
from alerts.notify.record import finish
from alerts.notify.retry import RECONCILE_AFTER_S
from alerts.notify.stage import Ctx
from alerts.store import Notification

__all__ = ["Reconcile"]


class Reconcile:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        d, row = self.deps, rows[0]
        with d.store.session() as s:  # the rows that went out in the same message
            ids = list(s.scalars(select(Notification.id).where(
                Notification.group_key == row.group_key, Notification.status == "unknown",
                Notification.body == row.body)))
        rows = d.claims.take(ids, d.clock(), "unknown")  # row is ours; the others if free
        if row.body is None:  # never rendered, so never sent
            d.claims.write([r.id for r in rows], status="pending")
            return []
        try:
            channel = d.channel(row.channel)
            if not channel.can_look_up:
                d.claims.write([r.id for r in rows], status="pending")
                return []
            message = channel_message(rows or [row], row.body, d.config, text_only=row.channel in TWILIO)
            sid = channel.find_sent(message, row.created_at - dt.timedelta(minutes=1))
        except (SmsChannelError, ChannelError) as exc:
            d.alarms.failed(row.channel, str(exc))
            d.claims.write([r.id for r in rows], error=str(exc),
                           not_before=d.clock() + dt.timedelta(seconds=RECONCILE_AFTER_S))
            return []
        if sid:
            finish(d, rows, "sent", provider_id=sid, sent_at=d.clock())
        else:
            d.claims.write([r.id for r in rows], status="pending")
        return []
