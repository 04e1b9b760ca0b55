"""Outbox leases: ``notifications.claimed_by`` and ``claimed_until`` (:mod:`alerts.claims`).

Several alerts processes may share one database; a process works on an outbox row only while it
holds the row's lease. Both columns are empty at rest, so existing rows need no data migration: a
row some older version left ``sending`` has no lease and is reconciled at the next start, as
before. Batch mode keeps SQLite's downgrade (a table rebuild) working.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
