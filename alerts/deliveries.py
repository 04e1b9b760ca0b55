"""Delivery statuses reported by the provider: Twilio status callbacks onto the outbox.

``record_status`` stores one (already verified) callback as a ``Delivery`` row and moves the
SMS notification's ``delivery_status`` forward only, in one conditional UPDATE: callbacks arrive
out of order, and a final status (delivered, undelivered, failed, canceled) never goes back. A
callback may overtake the sender recording the sid: ``apply_recorded_deliveries`` replays the
stored statuses once it has. A retryable delivery failure (``failed``/``undelivered`` with a code
of ``alerts.channels.sms.RETRYABLE_CODES``, e.g. 30001 queue overflow) puts a ``sent`` row back
to ``pending`` so that the dispatcher sends it again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from alerts.channels.sms import delivery_outcome
from alerts.store import Delivery, Notification, Store

__all__ = ["RETRY_AFTER_FAILED_DELIVERY_S", "StatusOutcome", "apply_recorded_deliveries",
           "record_status", "sid_status"]

# Twilio message statuses in lifecycle order; the last rung is final (read follows delivered).
_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4,
         "undelivered": 4, "failed": 4, "canceled": 4, "read": 5}
_FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})

RETRY_AFTER_FAILED_DELIVERY_S = 30.0

StatusOutcome = Literal["updated", "kept", "unknown"]


def _replaceable(status: str) -> tuple[str, ...]:
    """The stored statuses ``status`` may overwrite (NULL always): earlier ones, or a peer that
    is not final (accepted -> scheduled). An unknown status only fills an empty field."""
    rank = _RANK.get(status)
    if rank is None:
        return ()
    return tuple(s for s, r in _RANK.items()
                 if s != status and (r < rank or (r == rank and s not in _FINAL)))


def sid_status(params: Mapping[str, str]) -> tuple[str, str]:
    """The message sid and status of a callback's form fields (empty strings when absent)."""
    # statuses we do not know may be longer than the String(32) columns; the payload keeps it all
    return (params.get("MessageSid") or params.get("SmsSid") or "",
            (params.get("MessageStatus") or params.get("SmsStatus") or "")[:32])


def _advance(s: Session, sid: str, status: str, error_code: int | None) -> int:
    values: dict[str, object] = {"delivery_status": status}
    if error_code is not None:
        values["error_code"] = error_code
    stmt = (update(Notification)
            .where(Notification.channel == "sms", Notification.provider_id == sid,
                   or_(Notification.delivery_status.is_(None),
                       Notification.delivery_status.in_(_replaceable(status))))
            .values(**values)
            .execution_options(synchronize_session=False))
    return int(s.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def record_status(store: Store, params: Mapping[str, str], now: dt.datetime) -> StatusOutcome:
    """Store one (already verified) status callback; move the notification's status forward.

    ``updated``: a notification took the new status; ``kept``: it already had this or a later
    one; ``unknown``: no SMS notification has this sid (yet) -- the Delivery is stored anyway.
    """
    sid, status = sid_status(params)
    raw = params.get("ErrorCode", "")
    code = int(raw) if raw.isdigit() and len(raw) < 10 else None  # Twilio codes: 5 digits
    with store.session.begin() as s:
        s.add(Delivery(provider_id=sid, status=status, error_code=code, received_at=now,
                       payload=dict(params)))
        if delivery_outcome(status, code) == "retry":
            # e.g. 30001 queue overflow: the provider took the message but dropped it, so it was
            # not delivered and may be sent again (with backoff); the old sid stays in deliveries
            s.execute(update(Notification).where(
                Notification.channel == "sms", Notification.provider_id == sid, Notification.status == "sent",
            ).values(status="pending", error_code=code, error=f"provider reported {status} {code}",
                     not_before=now + dt.timedelta(seconds=RETRY_AFTER_FAILED_DELIVERY_S)))
        if _advance(s, sid, status, code):
            return "updated"
        known = s.scalar(select(Notification.id).where(Notification.channel == "sms",
                                                       Notification.provider_id == sid).limit(1))
    return "kept" if known is not None else "unknown"


def apply_recorded_deliveries(store: Store, provider_id: str) -> None:
    """Replay the stored callbacks of ``provider_id`` onto its notification, in arrival order:
    for the SMS sender right after it records the sid, as a fast provider may call back first."""
    with store.session.begin() as s:
        rows = s.execute(select(Delivery.status, Delivery.error_code)
                         .where(Delivery.provider_id == provider_id).order_by(Delivery.id)).all()
        for status, code in rows:
            _advance(s, provider_id, status, code)
