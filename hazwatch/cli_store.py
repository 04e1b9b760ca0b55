"""The audit store as the operator CLI opens it: an existing hazwatch database, never a new one.

``hazwatch episodes|silences|report`` read and write the database the alerts service created.
Opening a store with :class:`alerts.store.Store` creates what is missing (SQLite makes the file on
connect, the migrations make the tables), so a typo in ``database.url`` would give an empty report
from a database made for the occasion. :func:`open_store` refuses instead: a SQLite file that does
not exist, or a database without hazwatch's tables, is :class:`NoStore` (the commands print it and
exit 1); nothing is created.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from alerts.store import Store

__all__ = ["NoStore", "open_store"]

_HINT = ("the alerts service creates it when it starts (hazwatch alerts --config DIR); check database.url "
         "in hazwatch.yaml and HAZWATCH_DATABASE_URL")


class NoStore(ValueError):
    """The configured database does not exist or holds no hazwatch tables."""


def open_store(url: str) -> Store:
    """The existing audit store at ``url``, brought to the newest migration; :class:`NoStore` if
    there is none. Connection errors are SQLAlchemy's, as before."""
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if path in ("", ":memory:") or path.startswith("file:"):
            raise NoStore(f"database {shown}: an in-memory SQLite database holds no audit store")
        if not Path(path).is_file():
            raise NoStore(f"database {shown}: no such file {str(Path(path).absolute())!r}; {_HINT}")
    store = Store(url, migrate=False)
    try:
        tables = set(inspect(store.engine).get_table_names())
        if not {"alembic_version", "episodes"} <= tables:
            raise NoStore(f"database {shown} holds no hazwatch audit store (no episodes table); {_HINT}")
        store.upgrade()
    except BaseException:
        store.engine.dispose()
        raise
    return store
