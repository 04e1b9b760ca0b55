"""The audit and lifecycle store: SQLAlchemy 2 models and the engine, migrated with Alembic.

SQLite is the embedded default, PostgreSQL the production store; both run in the tests.

Tables::

    episodes        one warning of one subject under one rule, raised -> cleared -> closed
    level_changes   every warning event of an episode (unique per episode, kind, level, ts)
    actions         acknowledge, dispose, close, false alarm, silence create/end: who, when, what
    notifications   the outbox: one row per (recipient, channel, reason), unique idempotency key,
                    leased by the alerts process working on it (alerts/claims.py)
    deliveries      delivery statuses reported by the provider (status callbacks), one row per
                    (sid, status, error code)
    silences        silences and maintenance windows: matcher, start, end, creator, reason
    faults          subjects whose sensor is in fault (their threshold warnings are inhibited)
    channel_alarms  per channel: failed attempts in a row, since when, and whether operators were
                    alarmed (alerts/channel_alarm.py)
"""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from formats.warning import WarningEvent

__all__ = [
    "Action",
    "Base",
    "ChannelState",
    "Delivery",
    "Episode",
    "Fault",
    "LevelChange",
    "Notification",
    "Silence",
    "Store",
    "UtcDateTime",
    "utcnow",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC in and out, on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(self, value: dt.datetime | None, dialect: object) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    pass


class Episode(Base):
    __tablename__ = "episodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(130))
    rule: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    """The site kind: chemical, tailings, rain."""
    enterprise: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), index=True, default="active")
    """active | acknowledged | cleared | closed"""
    level: Mapped[str] = mapped_column(String(16))
    peak: Mapped[str] = mapped_column(String(16))
    unit: Mapped[str] = mapped_column(String(16), default="")
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    raised_ts: Mapped[int] = mapped_column(BigInteger)
    """Event time (epoch ms) of the reading that raised it."""
    raised_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    """Wall clock when hazwatch learnt of it."""
    escalation_since: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """Wall clock when it first reached the escalation level (叫应 timers start here)."""
    red_since: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    close_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    false_alarm: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class LevelChange(Base):
    __tablename__ = "level_changes"
    __table_args__ = (UniqueConstraint("episode_id", "kind", "level", "ts", name="uq_level_change"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    previous: Mapped[str] = mapped_column(String(16))
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    """Event time, epoch ms."""
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Action(Base):
    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    episode_id: Mapped[str | None] = mapped_column(ForeignKey("episodes.id"), nullable=True, index=True)
    silence_id: Mapped[int | None] = mapped_column(ForeignKey("silences.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    """acknowledge | dispose | close | false_alarm | silence_create | silence_end"""
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)


class Notification(Base):
    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    """Idempotency key: recorded before sending, unique, so nothing goes out twice."""
    channel: Mapped[str] = mapped_column(String(16))
    episode: Mapped[str] = mapped_column(String(64), index=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    """raised | escalated | deescalated | cleared | escalation | reminder | cap-alert | cap-allclear"""
    level: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(String(64), index=True)
    """E.164 number for SMS, zone id for CAP."""
    name: Mapped[str] = mapped_column(String(128), default="")
    role: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(64), default="")
    """Which routing rule or escalation step produced it."""
    event: Mapped[str] = mapped_column(Text)
    """The warning event (JSON, :mod:`formats.warning`) it was planned from; read it as
    :attr:`warning`."""
    group_key: Mapped[str] = mapped_column(String(160), index=True, default="")
    """Changes of one site to one recipient on one channel within group_wait go out together."""
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    segments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(32), default="pending", index=True)
    """pending | sending | sent | failed | unknown | suppressed"""
    suppressed_reason: Mapped[str | None] = mapped_column(String(128), nullable=True)
    silence_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    """Twilio message sid, or the CAP identifier."""
    delivery_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    not_before: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow, index=True)
    """Grouping wait, quiet hours and retry backoff all move this."""
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The alerts process working on the row (``host:pid:random``), see :mod:`alerts.claims`."""
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """End of that lease; a row left ``sending`` past it is reconciled by another process."""

    @functools.cached_property
    def warning(self) -> WarningEvent:
        """The warning event it was planned from, decoded once per loaded row (the event never
        changes after the row is recorded)."""
        return WarningEvent.from_json(self.event)


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True, index=True)
    """``sid:status:error code`` (:func:`alerts.deliveries.callback_key`): unique, so a repeated
    callback is stored once. NULL only on repeats stored before migration 0004."""
    provider_id: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(32))
    """Twilio's status words run up to 19 characters (partially_delivered)."""
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Silence(Base):
    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), default="silence")
    """silence | maintenance"""
    matcher: Mapped[dict[str, Any]] = mapped_column(JSON)
    """{"site": ..., "subject": ..., "rule": ..., "max_level": ...}; omitted keys match anything."""
    starts_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    ends_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=utcnow)
    ended_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Fault(Base):
    __tablename__ = "faults"

    subject: Mapped[str] = mapped_column(String(130), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    check: Mapped[str] = mapped_column(String(32))
    since: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class ChannelState(Base):
    __tablename__ = "channel_alarms"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    """Failed send attempts since the last success, by every alerts process together."""
    failing_since: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    raised_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    """Set while the alarm is up; the process whose update set it tells the operators."""
    cleared_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Store:
    """The database: engine, sessions, and the schema brought to the newest migration."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.session: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)
        if migrate:
            self.upgrade()

    def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations (``alerts/migrations``) up to ``revision``."""
        from alembic import command
        from alembic.config import Config as AlembicConfig

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # the console and CLI read while alerts writes
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
