"""Delivery statuses reported by the provider: Twilio status callbacks onto the outbox.

``record_status`` stores one (already verified) callback as a ``Delivery`` row and moves the
SMS notification's ``delivery_status`` forward only, in one conditional UPDATE: callbacks arrive
out of order, and a final status (delivered, undelivered, failed, canceled, read) never goes back.
A callback may overtake the sender recording the sid: ``apply_recorded_deliveries`` replays the
stored statuses once it has.

A final status is final. A retryable delivery failure (``failed``/``undelivered`` with a code of
``alerts.channels.sms.RETRYABLE_CODES``, e.g. 30001 queue overflow) puts a ``sent`` row back to
``pending`` so that the dispatcher sends it again -- but only when it is the first final status
of that message: after ``delivered`` (or any other final status) it is stored and changes
nothing, so a late failure never sends a delivered warning twice. The retry UPDATE carries that
condition itself, so of two final callbacks racing on PostgreSQL only the first applies.

Twilio retries a callback it got no 2xx for, and a proxy may repeat one: a callback is identified
by ``callback_key`` (sid, status, error code), unique in ``deliveries``, and a repeat is neither
stored nor applied again (``replayed``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Literal

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from alerts.channels.sms import delivery_outcome
from alerts.store import Delivery, Notification, Store

__all__ = ["RETRY_AFTER_FAILED_DELIVERY_S", "StatusOutcome", "apply_recorded_deliveries",
           "callback_key", "record_receipt", "record_status", "sid_status"]

# Twilio message statuses in lifecycle order; the last rung is final (read follows delivered).
_RANK = {"accepted": 0, "scheduled": 0, "queued": 1, "sending": 2, "sent": 3, "delivered": 4,
         "undelivered": 4, "failed": 4, "canceled": 4, "read": 5}
_FINAL = frozenset({"delivered", "undelivered", "failed", "canceled", "read"})

RETRY_AFTER_FAILED_DELIVERY_S = 30.0

StatusOutcome = Literal["updated", "kept", "unknown", "replayed"]

# ON CONFLICT DO NOTHING, spelt per backend (the store runs on these two)
_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


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


def callback_key(sid: str, status: str, error_code: int | None) -> str:
    """What identifies one callback: ``sid:status:code``, the code empty when there is none.
    Migration 0004 computes the same text in SQL for the rows stored before it."""
    return f"{sid}:{status}:{'' if error_code is None else error_code}"


def _not_final() -> ColumnElement[bool]:
    return or_(Notification.delivery_status.is_(None), Notification.delivery_status.not_in(_FINAL))


def _store_once(s: Session, delivery: dict[str, object]) -> bool:
    """Insert one ``deliveries`` row unless its key is stored already; True when inserted."""
    insert = _INSERT[s.get_bind().dialect.name]
    stmt = insert(Delivery).values(**delivery).on_conflict_do_nothing(index_elements=[Delivery.key])
    return bool(s.execute(stmt).rowcount)  # type: ignore[attr-defined]


def _advance(s: Session, sid: str, status: str, error_code: int | None, channel: str = "sms") -> int:
    values: dict[str, object] = {"delivery_status": status}
    if error_code is not None:
        values["error_code"] = error_code
    stmt = (update(Notification)
            .where(Notification.channel == channel, Notification.provider_id == sid,
                   or_(Notification.delivery_status.is_(None),
                       Notification.delivery_status.in_(_replaceable(status))))
            .values(**values)
            .execution_options(synchronize_session=False))
    return int(s.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def _apply(s: Session, sid: str, status: str, code: int | None, at: dt.datetime) -> int:
    """Apply one stored callback to the notification of ``sid``; the rows it moved forward."""
    if delivery_outcome(status, code) == "retry":
        # e.g. 30001 queue overflow: the provider took the message but dropped it, so it was
        # not delivered and may be sent again (with backoff); the old sid stays in deliveries.
        # Only as the message's first final status: after "delivered" it changes nothing.
        s.execute(update(Notification).where(
            Notification.channel == "sms", Notification.provider_id == sid, Notification.status == "sent",
            _not_final(),
        ).values(status="pending", error_code=code, error=f"provider reported {status} {code}",
                 not_before=at + dt.timedelta(seconds=RETRY_AFTER_FAILED_DELIVERY_S)))
    return _advance(s, sid, status, code)


def record_status(store: Store, params: Mapping[str, str], now: dt.datetime) -> StatusOutcome:
    """Store one (already verified) status callback; move the notification's status forward.

    ``updated``: a notification took the new status; ``kept``: it already had this, a later or
    another final one; ``unknown``: no SMS notification has this sid (yet) -- the Delivery is
    stored anyway; ``replayed``: this very callback was stored before, nothing is done.
    """
    sid, status = sid_status(params)
    raw = params.get("ErrorCode", "")
    code = int(raw) if raw.isdigit() and len(raw) < 10 else None  # Twilio codes: 5 digits
    with store.session.begin() as s:
        if not _store_once(s, {"key": callback_key(sid, status, code), "provider_id": sid,
                               "status": status, "error_code": code, "received_at": now,
                               "payload": dict(params)}):
            return "replayed"
        if _apply(s, sid, status, code, now):
            return "updated"
        known = s.scalar(select(Notification.id).where(Notification.channel == "sms",
                                                       Notification.provider_id == sid).limit(1))
    return "kept" if known is not None else "unknown"


def record_receipt(store: Store, channel: str, provider_id: str, status: str, error: str | None,
                   now: dt.datetime) -> StatusOutcome:
    """Store one delivery receipt pulled from a provider without status callbacks (Aliyun,
    Tencent: ``alerts/receipts.py``), ``status`` delivered or undelivered, and move the
    notification of ``channel`` with ``provider_id`` forward, as a Twilio callback does; asked
    twice, it is ``replayed``."""
    with store.session.begin() as s:
        if not _store_once(s, {"key": f"{channel}:{provider_id}:{status}"[:200], "provider_id": provider_id,
                               "status": status, "error_code": None, "received_at": now,
                               "payload": {"channel": channel, "error": error}}):
            return "replayed"
        return "updated" if _advance(s, provider_id, status, None, channel) else "kept"


def apply_recorded_deliveries(store: Store, provider_id: str) -> None:
    """Replay the stored callbacks of ``provider_id`` onto its notification, in arrival order:
    for the SMS sender right after it records the sid, as a fast provider may call back first
    (a retryable failure among them sends it again, as when it comes after the sid)."""
    with store.session.begin() as s:
        rows = s.execute(select(Delivery.status, Delivery.error_code, Delivery.received_at)
                         .where(Delivery.provider_id == provider_id).order_by(Delivery.id)).all()
        for status, code, received_at in rows:
            _apply(s, provider_id, status, code, received_at)
