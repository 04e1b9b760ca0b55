"""The notification outbox: every notification is recorded under its idempotency key (unique)
before it is sent, and its result is recorded after. SQLAlchemy 2; SQLite embedded, PostgreSQL
in production.

Statuses::

    pending  -> sending -> sent
                        -> failed   (permanent: invalid number, unsubscribed, ...)
                        -> pending  (retryable: backoff, next_attempt_at)
                        -> unknown  (timeout: may have been sent; reconciled with the provider)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    DateTime,
    TypeDecorator,
    Integer,
    String,
    Text,
    create_engine,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from alerts.plan import Intent

__all__ = ["Base", "Notification", "Outbox", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in and out, on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the outbox")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    episode: Mapped[str] = mapped_column(String(64), index=True)
    site: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    event: Mapped[str] = mapped_column(Text)
    """The warning event (JSON) the notification was planned from."""
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    """SMS text, or the CAP XML, once rendered."""
    segments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Twilio message sid, or the CAP identifier."""
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Outbox:
    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, future=True)
        Base.metadata.create_all(self.engine)

    def record(self, intents: Iterable[Intent]) -> int:
        """Insert intents not seen before (by key). Returns how many were new."""
        rows = [
            {
                "key": i.key, "channel": i.channel, "episode": i.episode, "site": i.site, "kind": i.kind,
                "level": i.level, "recipient": i.recipient, "role": i.role, "language": i.language,
                "event": i.event.to_json().decode(), "status": "pending", "attempts": 0,
                "created_at": utcnow(), "next_attempt_at": utcnow(),
            }
            for i in intents
        ]
        if not rows:
            return 0
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(Notification).values(rows).on_conflict_do_nothing(index_elements=["key"])
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount or 0

    def due(self, now: dt.datetime, limit: int = 200) -> list[Notification]:
        """Pending notifications whose time has come, oldest first."""
        with Session(self.engine, expire_on_commit=False) as s:
            q = (select(Notification)
                 .where(Notification.status.in_(("pending", "unknown")), Notification.next_attempt_at <= now)
                 .order_by(Notification.id).limit(limit))
            return list(s.scalars(q))

    def blocked_by_earlier(self, n: Notification) -> bool:
        """True while an earlier notification of the same episode to the same recipient is unsent,
        so a recipient never reads the all-clear before the warning."""
        with Session(self.engine) as s:
            q = select(Notification.id).where(
                Notification.episode == n.episode, Notification.recipient == n.recipient,
                Notification.channel == n.channel, Notification.id < n.id,
                Notification.status.in_(("pending", "sending", "unknown")),
            ).limit(1)
            return s.scalar(q) is not None

    def find(self, **where: Any) -> list[Notification]:
        with Session(self.engine, expire_on_commit=False) as s:
            q = select(Notification).filter_by(**where).order_by(Notification.id)
            return list(s.scalars(q))

    def update(self, notification_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(Notification).where(Notification.id == notification_id).values(**values))

    def all(self) -> list[Notification]:
        return self.find()
