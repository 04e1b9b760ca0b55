"""``hazwatch users add|list`` through typer's CliRunner, on a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from alerts.store import Action, Store
from console.users import UserRow, verify_password
from hazwatch.cli import app


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HAZWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}


def test_users_add_from_stdin_and_list(env: dict[str, str]) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["users", "add", "zhang", "--role", "admin", "--password-stdin"],
                      input="a long enough password\n", env=env)
    assert r.exit_code == 0, r.output
    assert "added admin zhang" in r.output
    r = runner.invoke(app, ["users", "add", "liu", "--role", "officer", "--enterprise", "临港石化有限公司",
                            "--password-stdin"], input="another password\n", env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "list"], env=env)
    assert r.exit_code == 0
    assert [line.split("\t")[:3] for line in r.output.splitlines()] == [
        ["liu", "officer", "临港石化有限公司"], ["zhang", "admin", "-"]]
    store = Store(env["HAZWATCH_DATABASE_URL"])
    try:
        with store.session() as s:
            row = s.scalar(select(UserRow).where(UserRow.username == "zhang"))
            audit = s.scalars(select(Action.action)).all()
        assert row is not None and verify_password(row.password_hash, "a long enough password")
        assert audit == ["user_create", "user_create"]
    finally:
        store.engine.dispose()


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["nobody", "--role", "king"], "a long enough password\n", "role must be one of"),
    (["liu", "--role", "officer"], "a long enough password\n", "needs --enterprise"),
    (["liu", "--role", "officer", "--enterprise", "No Such Co"], "a long enough password\n",
     "needs --enterprise"),
    (["shorty", "--role", "operator"], "short\n", "at least 8 characters"),
])
def test_users_add_rejects(env: dict[str, str], args: list[str], stdin: str, message: str) -> None:
    r = CliRunner().invoke(app, ["users", "add", *args, "--password-stdin"], input=stdin, env=env)
    assert r.exit_code == 1
    assert message in r.output


def test_users_add_twice_fails(env: dict[str, str]) -> None:
    runner = CliRunner()
    args = ["users", "add", "wang", "--role", "operator", "--password-stdin"]
    assert runner.invoke(app, args, input="a long enough password\n", env=env).exit_code == 0
    r = runner.invoke(app, args, input="a long enough password\n", env=env)
    assert r.exit_code == 1 and "already exists" in r.output


def test_users_add_prompts_twice(env: dict[str, str]) -> None:
    r = CliRunner().invoke(app, ["users", "add", "chen", "--role", "operator"],
                           input="prompted password\nprompted password\n", env=env)
    assert r.exit_code == 0, r.output
