"""``hazwatch report`` (and the other audit-store commands) never create a database: a SQLite file
that is not there, or a database without hazwatch's tables, is an error (exit 1) and stays as it was."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from config import example_dir
from hazwatch.cli import app
from tests.alerts.db import fresh_database


def _report(url: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["report", "--config", str(example_dir()), "--json"],
                                env={"HAZWATCH_DATABASE_URL": url})
    return result.exit_code, result.stderr


def test_a_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    code, stderr = _report(f"sqlite:///{path}")
    assert code == 1
    assert stderr.startswith(f"error: database sqlite:///{path}: no such file '{path}'")
    assert "the alerts service creates it" in stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["episodes", "list"], ["silences", "list"]], ids=" ".join)
def test_no_audit_store_command_creates_one(tmp_path: Path, command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--config", str(example_dir())],
                                env={"HAZWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert result.exit_code == 1 and "no such file" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_sqlite_file_without_hazwatch_tables_gets_none(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE unrelated (x INTEGER)")
    code, stderr = _report(f"sqlite:///{path}")
    assert code == 1
    assert f"database sqlite:///{path} holds no hazwatch audit store (no episodes table)" in stderr
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["unrelated"]


@pytest.fixture
def empty_postgres(tmp_path: Path) -> Iterator[str]:
    yield from fresh_database("postgresql", tmp_path)


def test_a_postgres_database_without_hazwatch_tables_gets_none(empty_postgres: str) -> None:
    code, stderr = _report(empty_postgres)
    assert code == 1
    assert "holds no hazwatch audit store (no episodes table)" in stderr
    assert ":postgres@" not in stderr  # the password is not printed
    engine = create_engine(empty_postgres)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
