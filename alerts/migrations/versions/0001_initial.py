"""Initial audit store: episodes, level changes, actions, notifications (the outbox), deliveries,
silences and faults, exactly as :mod:`alerts.store` declares them.

Written from an autogenerate run against an empty SQLite database and reviewed by hand:

- self-contained (no import of :mod:`alerts.store`), so that later model changes cannot rewrite
  history; ``UtcDateTime`` is stored as ``DateTime(timezone=True)``;
- unique and foreign-key constraints carry names, so that later batch migrations on SQLite
  (which rebuild tables) can drop or alter them;
- tables are created parents first and dropped children first (SQLite enforces foreign keys).

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool = False) -> sa.Column[Any]:
    """A timezone-aware UTC timestamp (``alerts.store.UtcDateTime``)."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


#: (table, column) pairs with a plain, non-unique index named ``ix_<table>_<column>``.
_INDEXES: tuple[tuple[str, str], ...] = (
    ("episodes", "site"),
    ("episodes", "state"),
    ("episodes", "raised_at"),
    ("level_changes", "episode_id"),
    ("actions", "episode_id"),
    ("notifications", "episode"),
    ("notifications", "site"),
    ("notifications", "recipient"),
    ("notifications", "group_key"),
    ("notifications", "status"),
    ("notifications", "provider_id"),
    ("notifications", "not_before"),
    ("deliveries", "provider_id"),
)


def upgrade() -> None:
    op.create_table(
        "episodes",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(130), nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("enterprise", sa.String(128), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("peak", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=True),
        sa.Column("raised_ts", sa.BigInteger(), nullable=False),
        _ts("raised_at"),
        _ts("escalation_since", nullable=True),
        _ts("red_since", nullable=True),
        _ts("cleared_at", nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        _ts("acknowledged_at", nullable=True),
        sa.Column("closed_by", sa.String(128), nullable=True),
        _ts("closed_at", nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("false_alarm", sa.Boolean(), nullable=False),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_episodes"),
    )
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("matcher", sa.JSON(), nullable=False),
        _ts("starts_at"),
        _ts("ends_at"),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.Column("ended_by", sa.String(128), nullable=True),
        _ts("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
    )
    op.create_table(
        "level_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("episode_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("previous", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        _ts("recorded_at"),
        sa.PrimaryKeyConstraint("id", name="pk_level_changes"),
        sa.ForeignKeyConstraint(["episode_id"], ["episodes.id"],
                                name="fk_level_changes_episode_id_episodes"),
        # A redelivered warning event finds its row here and changes nothing.
        sa.UniqueConstraint("episode_id", "kind", "level", "ts", name="uq_level_change"),
    )
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("episode_id", sa.String(64), nullable=True),
        sa.Column("silence_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        _ts("at"),
        sa.Column("category", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_actions"),
        sa.ForeignKeyConstraint(["episode_id"], ["episodes.id"],
                                name="fk_actions_episode_id_episodes"),
        sa.ForeignKeyConstraint(["silence_id"], ["silences.id"],
                                name="fk_actions_silence_id_silences"),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("episode", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("group_key", sa.String(160), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("suppressed_reason", sa.String(128), nullable=True),
        sa.Column("silence_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(128), nullable=True),
        sa.Column("delivery_status", sa.String(32), nullable=True),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("not_before"),
        _ts("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        # The outbox: recorded under this key before sending, so nothing goes out twice.
        sa.UniqueConstraint("key", name="uq_notifications_key"),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        _ts("received_at"),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
    )
    op.create_table(
        "faults",
        sa.Column("subject", sa.String(130), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("check", sa.String(32), nullable=False),
        _ts("since"),
        sa.PrimaryKeyConstraint("subject", name="pk_faults"),
    )
    for table, column in _INDEXES:
        op.create_index(f"ix_{table}_{column}", table, [column], unique=False)


def downgrade() -> None:
    for table, column in reversed(_INDEXES):
        op.drop_index(f"ix_{table}_{column}", table_name=table)
    for table in ("faults", "deliveries", "notifications", "actions", "level_changes", "silences",
                  "episodes"):
        op.drop_table(table)
