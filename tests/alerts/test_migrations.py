"""The Alembic migrations build exactly the schema that alerts/store.py declares, on SQLite and
PostgreSQL, and go down and up again cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, select, text

import alerts.store
import console.users  # noqa: F401  (the console's users and sessions share the store: migration 0002)
from alerts.claims import Claims
from alerts.deliveries import callback_key, record_status
from alerts.store import Base, Delivery, Notification, Store, utcnow
from tests.alerts.db import BACKENDS, fresh_database

MIGRATIONS = Path(alerts.store.__file__).with_name("migrations")


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test (these tests change the schema)."""
    yield from fresh_database(request.param, tmp_path)


def _diffs(store: Store) -> list[object]:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
        return list(compare_metadata(ctx, Base.metadata))


def _revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_live_schema_matches_the_models(empty_url: str) -> None:
    store = Store(empty_url)
    try:
        assert _diffs(store) == []
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert head is not None and _revision(store) == head
        tables = set(inspect(store.engine).get_table_names())
        assert tables == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        store.engine.dispose()


def test_comparison_is_not_vacuous(empty_url: str) -> None:
    """A schema that drifted from the models is reported."""
    store = Store(empty_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_episodes_raised_at"))
        diffs = _diffs(store)
        assert [d[0] for d in diffs] == ["add_index"], diffs  # type: ignore[index]
    finally:
        store.engine.dispose()


def test_upgrade_is_idempotent_and_reversible(empty_url: str) -> None:
    store = Store(empty_url)
    try:
        Store(empty_url).engine.dispose()  # a second service starting: nothing to do
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        assert _revision(store) is None
        store.upgrade()
        assert _diffs(store) == []
    finally:
        store.engine.dispose()


def test_offline_sql_renders(empty_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``alembic upgrade head --sql`` (for a DBA to review) works through env.py's offline path."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", empty_url)
    command.upgrade(cfg, "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE episodes" in sql and "uq_notifications_key" in sql


def test_outbox_rows_from_before_leases_keep_their_data_and_have_no_lease(empty_url: str) -> None:
    """0003 adds the lease columns to a live outbox; a row an older version left ``sending`` has
    no lease, so the next start reconciles it at once (alerts/claims.py)."""
    store = Store(empty_url, migrate=False)
    try:
        store.upgrade("0002")
        with store.engine.begin() as conn:
            conn.execute(insert(Notification).values(
                key="k1", channel="sms", episode="ep-1", site="TD-001", kind="raised", level="red",
                recipient="+8613700000201", role="resident", language="zh-CN", event="{}", status="sending",
                body="【hazwatch】…", attempts=1))
        store.upgrade()
        with store.session() as s:
            row = s.scalars(select(Notification)).one()
        assert (row.key, row.status, row.body, row.claimed_by, row.claimed_until) == (
            "k1", "sending", "【hazwatch】…", None, None)
        assert Claims(store, "a", 40).expire(utcnow()) == 1
    finally:
        store.engine.dispose()


def test_deliveries_from_before_keys_keep_their_rows_and_repeats_are_not_stored_again(empty_url: str) -> None:
    """0004 keys the stored callbacks as alerts/deliveries.py does; of a callback stored twice
    only the first row gets the key, no row is lost, and the callback is not stored a third time."""
    store = Store(empty_url, migrate=False)
    sid = "SM" + "d" * 32
    stored = [("sent", None), ("sent", None), ("failed", 30001), ("failed", 30003)]
    try:
        store.upgrade("0003")
        with store.engine.begin() as conn:
            for status, code in stored:
                conn.execute(insert(Delivery).values(provider_id=sid, status=status, error_code=code,
                                                     received_at=utcnow(), payload={"MessageSid": sid}))
        store.upgrade()
        with store.session() as s:
            rows = s.execute(select(Delivery.status, Delivery.error_code, Delivery.key).order_by(Delivery.id)).all()
        assert rows == [("sent", None, callback_key(sid, "sent", None)), ("sent", None, None),
                        ("failed", 30001, callback_key(sid, "failed", 30001)),
                        ("failed", 30003, callback_key(sid, "failed", 30003))]
        params = {"MessageSid": sid, "MessageStatus": "sent"}
        assert record_status(store, params, utcnow()) == "replayed"
        assert record_status(store, {**params, "MessageStatus": "delivered"}, utcnow()) == "unknown"
    finally:
        store.engine.dispose()
