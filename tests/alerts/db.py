"""Audit-store fixtures for SQLite and PostgreSQL: import them into a test module, e.g.::

    from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401

The fixtures are named ``backend_url`` and ``store`` (the functions carry a ``_fixture`` suffix so
that a test's ``store`` argument does not shadow an imported name).

``backend_url`` is module-scoped and parametrised over both backends: a fresh SQLite file, and a
fresh PostgreSQL database ``hazwatch_test_<random>`` created through the ``postgres`` database and
dropped afterwards. The server is ``HAZWATCH_TEST_PG_URL`` (default
``postgresql+psycopg2://postgres@127.0.0.1:5432``). When it is unreachable the PostgreSQL tests
fail under CI (the ``CI`` variable is set) and are skipped elsewhere.

``store`` is a migrated :class:`~alerts.store.Store` on that database, emptied before each test.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from alerts.store import Base, Store

__all__ = ["BACKENDS", "backend_url_fixture", "fresh_database", "store_fixture"]

BACKENDS = ("sqlite", "postgresql")
PG_SERVER = os.environ.get("HAZWATCH_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def _unreachable(reason: str) -> None:
    where = make_url(f"{PG_SERVER}/postgres").render_as_string(hide_password=True)
    message = f"PostgreSQL at {where} is unreachable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def fresh_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    """Yield the URL of a new, empty database of ``backend``; remove it afterwards."""
    if backend == "sqlite":
        path = tmp_dir / f"hazwatch-{secrets.token_hex(4)}.db"
        yield f"sqlite:///{path}"
        return
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 5})
    name = f"hazwatch_test_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        _unreachable(str(exc.orig).strip().splitlines()[0])
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            # FORCE: a test that failed midway may have left a connection open.
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(name="backend_url", scope="module", params=BACKENDS)
def backend_url_fixture(request: pytest.FixtureRequest,
                        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh database per test module and backend."""
    yield from fresh_database(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(name="store")
def store_fixture(backend_url: str) -> Iterator[Store]:
    """A migrated store on the module's database, with every table emptied first."""
    db = Store(backend_url)
    with db.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    try:
        yield db
    finally:
        db.engine.dispose()
