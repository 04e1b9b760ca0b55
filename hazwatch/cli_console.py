"""``hazwatch console`` and ``hazwatch users add|list``.

Mounted by :mod:`hazwatch.cli`::

    app.command("console")(console_command)
    app.add_typer(users_app, name="users")

The database is the configuration's (``HAZWATCH_DATABASE_URL`` overrides it). There is no
default user or password: the first admin is ``hazwatch users add NAME --role admin``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from config.models import Config
from hazwatch.cli_common import ConfigDir, ExitCode
from hazwatch.cli_common import load_config_or_exit as _config

__all__ = ["console_command", "users_app"]

users_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        help="Console users: add, passwd, disable, enable, list.")


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.FAILURE)


def _store(config: Config):  # type: ignore[no-untyped-def]
    from alerts.store import Store

    try:
        return Store(config.settings.database.url)
    except SQLAlchemyError as exc:
        url = make_url(config.settings.database.url).render_as_string(hide_password=True)
        _fail(f"database {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
        raise


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -)")],
    role: Annotated[str, typer.Option(help="operator | officer | admin")],
    enterprise: Annotated[str | None, typer.Option(
        help="Officers: the enterprise whose sites they see (as in sites.yaml)")] = None,
    language: Annotated[str, typer.Option(help="zh-CN | en")] = "zh-CN",
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input")] = False,
    config: ConfigDir = None,
) -> None:
    """Add a console user (the password is prompted for, twice, unless --password-stdin)."""
    from console.users import InvalidUser, UserService

    cfg = _config(config)
    enterprises = sorted({s.enterprise for s in cfg.sites})
    if role == "officer" and enterprise not in enterprises:
        _fail(f"an officer needs --enterprise, one of: {', '.join(enterprises)}")
    password = _read_password(password_stdin)
    store = _store(cfg)
    try:
        row = UserService(store).add(username, password, role,
                                     enterprise=enterprise if role == "officer" else None,
                                     language=language, by="cli")
    except InvalidUser as exc:
        _fail(str(exc))
        return
    finally:
        store.engine.dispose()
    who = f" ({row.enterprise})" if row.enterprise else ""
    typer.echo(f"added {row.role} {row.username}{who}")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password (密码)", hide_input=True, confirmation_prompt=True)


def _change_user(config: Path | None, username: str, change: str, **kwargs: object) -> None:
    from console.users import InvalidUser, UnknownUser, UserService

    store = _store(_config(config))
    try:
        getattr(UserService(store), change)(username, **kwargs)
    except (InvalidUser, UnknownUser) as exc:
        _fail(str(exc))
    finally:
        store.engine.dispose()


@users_app.command("passwd")
def users_passwd(
    username: Annotated[str, typer.Argument(help="User name")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of standard input")] = False,
    config: ConfigDir = None,
) -> None:
    """Set a user's password; the user's open sessions end."""
    _change_user(config, username, "set_password", password=_read_password(password_stdin), by="cli")
    typer.echo(f"password of {username} changed; open sessions ended")


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument(help="User name")], config: ConfigDir = None) -> None:
    """Refuse a user's log-ins and end the user's open sessions (the user and the audit trail stay)."""
    _change_user(config, username, "set_disabled", disabled=True, by="cli")
    typer.echo(f"{username} disabled")


@users_app.command("enable")
def users_enable(username: Annotated[str, typer.Argument(help="User name")], config: ConfigDir = None) -> None:
    """Allow a disabled user to log in again."""
    _change_user(config, username, "set_disabled", disabled=False, by="cli")
    typer.echo(f"{username} enabled")


@users_app.command("list")
def users_list(config: ConfigDir = None) -> None:
    """List console users."""
    from console.users import UserService

    cfg = _config(config)
    store = _store(cfg)
    try:
        rows = UserService(store).list()
    finally:
        store.engine.dispose()
    if not rows:
        typer.echo("no users (add one: hazwatch users add NAME --role admin)")
        return
    for r in rows:
        flags = " disabled" if r.disabled else ""
        typer.echo(f"{r.username}\t{r.role}\t{r.enterprise or '-'}\t{r.language}{flags}")


def console_command(
    config: ConfigDir = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default: console.host)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: console.port, 8080)")] = None,
) -> None:
    """The operator console (web): live map, warnings, notifications, quality, silences."""
    import logging

    from console.service import serve
    from hazwatch.logs import configure_logging

    configure_logging()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter
    cfg = _config(config)
    shown = host or cfg.settings.console.host
    typer.echo(f"console on http://{shown}:{port or cfg.settings.console.port}", err=True)
    serve(cfg, host=host, port=port, config_dir=config.absolute() if config else None)
