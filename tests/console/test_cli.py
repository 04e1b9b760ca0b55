"""``hazwatch users add|list`` through typer's CliRunner, on a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from alerts.store import Action, Store
from config import example_dir
from console.users import UserRow, verify_password
from hazwatch.cli import app


CONFIG = ["--config", str(example_dir())]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"HAZWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}


def test_users_add_from_stdin_and_list(env: dict[str, str]) -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["users", "add", *CONFIG, "zhang", "--role", "admin", "--password-stdin"],
                      input="a long enough password\n", env=env)
    assert r.exit_code == 0, r.output
    assert "added admin zhang" in r.output
    r = runner.invoke(app, ["users", "add", *CONFIG, "liu", "--role", "officer", "--enterprise", "临港石化有限公司",
                            "--password-stdin"], input="another password\n", env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "list", *CONFIG], env=env)
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
    r = CliRunner().invoke(app, ["users", "add", *CONFIG, *args, "--password-stdin"], input=stdin, env=env)
    assert r.exit_code == 1
    assert message in r.output


def test_users_add_twice_fails(env: dict[str, str]) -> None:
    runner = CliRunner()
    args = ["users", "add", *CONFIG, "wang", "--role", "operator", "--password-stdin"]
    assert runner.invoke(app, args, input="a long enough password\n", env=env).exit_code == 0
    r = runner.invoke(app, args, input="a long enough password\n", env=env)
    assert r.exit_code == 1 and "already exists" in r.output


def test_users_add_prompts_twice(env: dict[str, str]) -> None:
    r = CliRunner().invoke(app, ["users", "add", *CONFIG, "chen", "--role", "operator"],
                           input="prompted password\nprompted password\n", env=env)
    assert r.exit_code == 0, r.output


class _NoServer:
    """Stands in for the console's ``StoppingServer``: keeps the config, serves nothing."""

    configs: list = []

    def __init__(self, config, stopping) -> None:  # noqa: ANN001 - uvicorn.Config, threading.Event
        _NoServer.configs.append(config)

    def run(self) -> None:
        pass


def test_console_host_option_reaches_the_cookie_flag(env: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    import console.service as service

    real_build = service.build
    monkeypatch.setattr(service, "build", lambda config, **kw: real_build(config, **{**kw, "kafka": False}))
    monkeypatch.setattr(service, "StoppingServer", _NoServer)
    _NoServer.configs = []
    runner = CliRunner()
    r = runner.invoke(app, ["users", "add", *CONFIG, "zhang", "--role", "operator", "--password-stdin"],
                      input="a long enough password\n", env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["console", *CONFIG, "--host", "0.0.0.0", "--port", "8181"], env=env)
    assert r.exit_code == 0, r.output
    (cfg,) = _NoServer.configs
    assert (cfg.host, cfg.port, cfg.proxy_headers) == ("0.0.0.0", 8181, False)
    assert cfg.app.state.console.config_dir == example_dir().absolute()  # for /api/config's check
    with TestClient(cfg.app) as c:  # plain HTTP: only the listen address asks for Secure
        csrf = c.get("/api/csrf").json()["csrf"]
        r2 = c.post("/api/login", json={"username": "zhang", "password": "a long enough password"},
                    headers={"X-CSRF-Token": csrf, "Cookie": f"hw_csrf={csrf}"})
    assert r2.status_code == 200, r2.text
    session = next(v for k, v in r2.headers.multi_items() if k == "set-cookie" and "hw_session=" in v)
    assert "secure" in [f.strip().lower() for f in session.split(";")]


@pytest.mark.parametrize(("proxies", "headers", "allowed"), [
    ([], False, None), (["10.0.0.2"], True, "10.0.0.2"), (["10.0.0.2", "10.0.0.3"], True, "10.0.0.2,10.0.0.3")])
def test_trusted_proxies_turn_on_forwarded_headers(proxies: list[str], headers: bool,
                                                   allowed: str | None) -> None:
    from config.console import ConsoleSettings
    from console.service import uvicorn_config

    cfg = uvicorn_config(None, ConsoleSettings(trusted_proxies=proxies))  # type: ignore[arg-type]
    assert cfg.proxy_headers is headers
    if allowed is not None:
        assert cfg.forwarded_allow_ips == allowed


def test_users_passwd_disable_enable_end_sessions_and_are_audited(env: dict[str, str]) -> None:
    from console.users import UserService

    runner = CliRunner()
    assert runner.invoke(app, ["users", "add", *CONFIG, "wang", "--role", "operator", "--password-stdin"],
                         input="first password\n", env=env).exit_code == 0
    store = Store(env["HAZWATCH_DATABASE_URL"])
    users = UserService(store)
    try:
        token, _ = users.open_session(users.authenticate("wang", "first password"), hours=12)
        assert users.session(token) is not None
        r = runner.invoke(app, ["users", "passwd", *CONFIG, "wang", "--password-stdin"], input="second password\n", env=env)
        assert r.exit_code == 0, r.output
        assert users.session(token) is None, "a new password ends the open sessions"
        assert users.authenticate("wang", "first password") is None
        assert users.authenticate("wang", "second password") is not None
        token, _ = users.open_session(users.authenticate("wang", "second password"), hours=12)
        assert runner.invoke(app, ["users", "disable", *CONFIG, "wang"], env=env).exit_code == 0
        assert users.session(token) is None and users.authenticate("wang", "second password") is None
        assert runner.invoke(app, ["users", "enable", *CONFIG, "wang"], env=env).exit_code == 0
        assert users.authenticate("wang", "second password") is not None
        r = runner.invoke(app, ["users", "disable", *CONFIG, "nobody"], env=env)
        assert r.exit_code == 1 and "nobody" in r.output
        with store.session() as s:
            audit = s.scalars(select(Action.action).where(Action.action.like("user_%"))).all()
        assert audit == ["user_create", "user_password", "user_disable", "user_enable"]
    finally:
        store.engine.dispose()


def test_a_name_differing_only_in_case_is_refused(env: dict[str, str]) -> None:
    runner = CliRunner()
    assert runner.invoke(app, ["users", "add", *CONFIG, "op", "--role", "operator", "--password-stdin"],
                         input="a long enough password\n", env=env).exit_code == 0
    r = runner.invoke(app, ["users", "add", *CONFIG, "Op", "--role", "operator", "--password-stdin"],
                      input="a long enough password\n", env=env)
    assert r.exit_code == 1 and "differ only in case" in r.output
