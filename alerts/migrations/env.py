"""Alembic environment of the audit store (:mod:`alerts.store`).

:meth:`alerts.store.Store.upgrade` passes its open connection in ``config.attributes["connection"]``
so that the migration runs inside the caller's transaction; the ``alembic`` command line (with
``sqlalchemy.url`` set) gets an engine of its own. SQLite cannot ``ALTER`` most things, so
migrations there run in batch mode (copy-and-move tables).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from alerts.store import Base

config = context.config
target_metadata = Base.metadata

#: Key of the PostgreSQL advisory lock held while migrating: two services starting together on a
#: fresh database would otherwise both try to create the tables.
MIGRATION_LOCK_KEY = 0x68617A77  # "hazw"


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Transaction-scoped: released when the caller's transaction ends.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL to stdout (``alembic upgrade head --sql``)."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=bool(url and url.startswith("sqlite")),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic needs a connection in config.attributes or sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
