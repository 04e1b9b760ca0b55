"""Status callbacks are stored once: ``deliveries.key`` (sid:status:error code), unique.

Twilio repeats a callback it got no 2xx for; with the key a repeat is neither stored nor applied
again (:mod:`alerts.deliveries`). Rows already stored get the key computed here exactly as
``alerts.deliveries.callback_key`` does; where a callback was stored several times only the first
row (lowest id) gets it and the repeats keep NULL, so that no audit row is deleted. A unique index
rather than a constraint: SQLite adds it without a table rebuild, also in offline SQL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("key", sa.String(200), nullable=True))
    # ||, COALESCE and CAST mean the same on SQLite and PostgreSQL; GROUP BY puts NULL codes together
    op.execute(
        "UPDATE deliveries SET key = provider_id || ':' || status || ':' "
        "|| COALESCE(CAST(error_code AS VARCHAR(10)), '') "
        "WHERE id IN (SELECT MIN(id) FROM deliveries GROUP BY provider_id, status, error_code)"
    )
    op.create_index("ix_deliveries_key", "deliveries", ["key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_deliveries_key", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("key")
