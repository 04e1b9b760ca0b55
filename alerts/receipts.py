"""Delivery receipts pulled from the SMS providers that send no status callbacks to us.

Twilio calls back with each message's status (``alerts/deliveries.py``). Aliyun and Tencent keep
the handset's receipt for us to ask (``QuerySendDetails``, ``PullSmsSendStatusByPhoneNumber``):
every channel whose class has ``receipt(message, sent_at)`` is asked here, by the alerts service,
for its ``sent`` rows without a delivery status, each send at most every :data:`ASK_EVERY_S`
and for :data:`ASK_FOR_H` after it went out. A receipt is recorded like a callback
(``record_receipt``): the row's ``delivery_status`` becomes ``delivered`` or ``undelivered``,
which the public warning coverage counts (``alerts/coverage.py``). A provider that cannot be
asked is asked again later; nothing is sent again because of a receipt (an undelivered warning
is listed for follow-up by phone).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import Counter
from sqlalchemy import select

from alerts.channels.base import ChannelError, Message
from alerts.deliveries import record_receipt
from alerts.store import Notification, Store

__all__ = ["ASK_EVERY_S", "ASK_FOR_H", "RECEIPTS", "ReceiptPoller"]

log = logging.getLogger("hazwatch.alerts.receipts")

ASK_EVERY_S = 30.0
"""A send without its receipt is asked about again after this long."""
ASK_FOR_H = 24.0
"""After this long without a receipt, a send is not asked about any more (it stays ``sent``)."""
LOOK_EVERY_S = 5.0
"""The outbox is looked at for sends to ask about at most this often."""

RECEIPTS = Counter("hazwatch_sms_receipts_total", "Delivery receipts pulled from SMS providers",
                   ["channel", "status"])


class ReceiptPoller:
    """Asks ``channels`` (those with ``receipt``) for the receipts of their sent rows."""

    def __init__(self, store: Store, channels: Mapping[str, Any], clock: Callable[[], dt.datetime]) -> None:
        self.store, self.clock = store, clock
        self.channels = {name: c for name, c in channels.items() if callable(getattr(c, "receipt", None))}
        self.next_ask: dict[tuple[str, str], float] = {}
        """(channel, provider id) -> ``time.monotonic()`` before which it is not asked again."""
        self._next_look = 0.0

    def poll(self) -> int:
        """Ask about what is due; the receipts recorded."""
        if not self.channels or time.monotonic() < self._next_look:
            return 0
        self._next_look = time.monotonic() + LOOK_EVERY_S
        now = self.clock()
        with self.store.session() as s:
            rows = s.scalars(select(Notification).where(
                Notification.channel.in_(list(self.channels)), Notification.status == "sent",
                Notification.delivery_status.is_(None), Notification.provider_id.is_not(None),
                Notification.sent_at >= now - dt.timedelta(hours=ASK_FOR_H)).order_by(Notification.id)).all()
        sends: dict[tuple[str, str], Notification] = {}
        for row in rows:  # a grouped send is known by its oldest row's key (channel_message)
            sends.setdefault((row.channel, str(row.provider_id)), row)
        recorded = 0
        for (channel, provider_id), row in sends.items():
            if self.next_ask.get((channel, provider_id), 0.0) > time.monotonic():
                continue
            self.next_ask[(channel, provider_id)] = time.monotonic() + ASK_EVERY_S
            message = Message(row.recipient, "", key=row.key, level=row.level, kind=row.kind)
            try:
                receipt = self.channels[channel].receipt(message, row.sent_at or now)
            except ChannelError as exc:
                log.warning("receipt of %s to %s not known yet: %s", channel, row.recipient, exc)
                continue
            if receipt is None:
                continue
            record_receipt(self.store, channel, provider_id, receipt.status, receipt.error, self.clock())
            RECEIPTS.labels(channel, receipt.status).inc()
            self.next_ask.pop((channel, provider_id), None)
            recorded += 1
        return recorded
