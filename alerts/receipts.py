"""Delivery receipts pulled from the SMS providers that send no status callbacks to us.

Twilio calls back with each message's status (``alerts/deliveries.py``). Aliyun and Tencent keep
the handset's receipt for us to ask (``QuerySendDetails``, ``PullSmsSendStatusByPhoneNumber``):
every channel whose class has ``receipt(message, sent_after, provider_id)`` is asked, in a thread
of its own (a slow provider never holds up the alerts service's loop), for its ``sent`` rows
without a delivery status: each send at most every :data:`ASK_EVERY_S`, for :data:`ASK_FOR_H`
after it went out, at most :data:`ASKS_PER_PASS` a pass, and a channel that could not be asked
is left alone for :data:`CHANNEL_BACKOFF_S`. A receipt is recorded like a callback
(``record_receipt``): the row's ``delivery_status`` becomes ``delivered`` or ``undelivered``,
which the public warning coverage counts (``alerts/coverage.py``). Nothing is sent again because
of a receipt (an undelivered warning is listed for follow-up by phone).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Self

from prometheus_client import Counter
from sqlalchemy import select

from alerts.channels.base import ChannelError, Message
from alerts.deliveries import record_receipt
from alerts.store import Notification, Store
from hazwatch.background import Background

__all__ = ["ASKS_PER_PASS", "ASK_EVERY_S", "ASK_FOR_H", "RECEIPTS", "ReceiptPoller"]

log = logging.getLogger("hazwatch.alerts.receipts")

ASK_EVERY_S = 30.0
"""A send without its receipt is asked about again after this long."""
ASK_FOR_H = 24.0
"""After this long without a receipt, a send is not asked about any more (it stays ``sent``)."""
ASKS_PER_PASS = 50
"""At most this many sends are asked about in one pass (the oldest first)."""
CHANNEL_BACKOFF_S = 60.0
"""A channel whose provider could not be asked is asked nothing for this long."""
LOOK_EVERY_S = 5.0
"""A pass looks at the outbox this often."""

RECEIPTS = Counter("hazwatch_sms_receipts_total", "Delivery receipts pulled from SMS providers",
                   ["channel", "status"])


class ReceiptPoller(Background):
    """Asks ``channels`` (those with ``receipt``) for the receipts of their sent rows:
    :meth:`poll` once, or :meth:`start` a thread that polls until :meth:`stop`."""

    thread_name = "alerts-receipts"
    stop_timeout_s = 15.0

    def __init__(self, store: Store, channels: Mapping[str, Any], clock: Callable[[], dt.datetime]) -> None:
        self.store, self.clock = store, clock
        self.channels: dict[str, Any] = {}
        self.use(channels)
        self.next_ask: dict[tuple[str, str], float] = {}
        """(channel, provider id) -> ``time.monotonic()`` before which it is not asked again."""
        self.channel_rest: dict[str, float] = {}
        """channel -> ``time.monotonic()`` before which it is asked nothing (it failed)."""
        super().__init__()

    def use(self, channels: Mapping[str, Any]) -> None:
        """Ask these channels from now on (a reload); what is known of each send stays."""
        self.channels = {name: c for name, c in channels.items() if callable(getattr(c, "receipt", None))}

    def start(self) -> Self:
        """The polling thread, when a channel can be asked (none: nothing to start)."""
        return super().start() if self.channels else self

    def _run(self) -> None:
        while not self.stopping.wait(LOOK_EVERY_S):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - e.g. the store is down: asked again next pass
                log.exception("pulling delivery receipts failed")

    def _due(self) -> list[tuple[str, str, Notification]]:
        now = self.clock()
        with self.store.session() as s:
            rows = s.scalars(select(Notification).where(
                Notification.channel.in_(list(self.channels)), Notification.status == "sent",
                Notification.delivery_status.is_(None), Notification.provider_id.is_not(None),
                Notification.sent_at >= now - dt.timedelta(hours=ASK_FOR_H)).order_by(Notification.id)).all()
        sends: dict[tuple[str, str], Notification] = {}
        for row in rows:  # a grouped send is known by its oldest row's key (channel_message)
            sends.setdefault((row.channel, str(row.provider_id)), row)
        self.next_ask = {k: v for k, v in self.next_ask.items() if k in sends}  # answered or too old
        mono = time.monotonic()
        return [(c, p, r) for (c, p), r in sends.items()
                if self.next_ask.get((c, p), 0.0) <= mono and self.channel_rest.get(c, 0.0) <= mono]

    def poll(self) -> int:
        """One pass: ask about what is due; the receipts recorded."""
        if not self.channels:
            return 0
        recorded = 0
        for channel, provider_id, row in self._due()[:ASKS_PER_PASS]:
            if self.channel_rest.get(channel, 0.0) > time.monotonic():
                continue  # it failed earlier in this pass
            self.next_ask[(channel, provider_id)] = time.monotonic() + ASK_EVERY_S
            message = Message(row.recipient, "", key=row.key, level=row.level, kind=row.kind)
            try:  # sent no earlier than the row was planned (sent_at may be when a lookup found it)
                receipt = self.channels[channel].receipt(message, row.created_at or row.sent_at, provider_id)
            except ChannelError as exc:
                self.channel_rest[channel] = time.monotonic() + CHANNEL_BACKOFF_S
                log.warning("%s cannot be asked for receipts now (again in %.0f s): %s", channel,
                            CHANNEL_BACKOFF_S, exc)
                continue
            if receipt is None:
                continue
            record_receipt(self.store, channel, provider_id, receipt.status, receipt.error, self.clock())
            RECEIPTS.labels(channel, receipt.status).inc()
            self.next_ask.pop((channel, provider_id), None)
            recorded += 1
        return recorded
