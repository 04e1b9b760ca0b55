"""What ``hazwatch episodes``, ``silences`` and ``report`` share: a command's context (the
configuration, its time zone, the audit store opened on first use), its errors (``error: ...``
and exit 1) and its output (rich tables, JSON).

Times are shown and read in the configuration's zone; an ISO time without an offset is local.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn
from zoneinfo import ZoneInfo

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from alerts.episodes import EpisodeError
from alerts.silences import SilenceError
from alerts.store import Store
from config.models import Config
from hazwatch.cli_common import ExitCode, load_config_or_exit
from hazwatch.cli_store import open_store

__all__ = ["By", "Json", "StoreCommand", "console", "fail", "print_json", "store_command", "table"]

By = Annotated[str, typer.Option(
    "--by", help="Who does it (name or staff id); recorded in the audit log.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class StoreCommand:
    """What a command needs: the configuration, its time zone and the store (opened lazily)."""

    def __init__(self, directory: Path | None) -> None:
        self.config: Config = load_config_or_exit(directory)
        self.tz = ZoneInfo(self.config.settings.timezone)
        self._store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config.settings.database.url)  # never a new database
        return self._store

    def time(self, value: dt.datetime | None) -> str:
        return "" if value is None else value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M:%S")

    def parse(self, text: str, option: str, *, end_of_day: bool = False) -> dt.datetime:
        """An ISO date or datetime; naive means local. A date is its midnight (or the next one)."""
        try:
            if len(text) == 10:
                day = dt.date.fromisoformat(text)
                t = dt.datetime.combine(day, dt.time(), self.tz)
                return t + dt.timedelta(days=1) if end_of_day else t
            t = dt.datetime.fromisoformat(text)
        except ValueError:
            fail(f"{option}: {text!r} is not an ISO date (2025-06-01) "
                  "or datetime (2025-06-01T08:30)")
        return t.replace(tzinfo=self.tz) if t.tzinfo is None else t


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.FAILURE)


@contextmanager
def store_command(directory: Path | None) -> Iterator[StoreCommand]:
    """Load the configuration; turn lifecycle and database errors into a message and exit 1."""
    ctx = StoreCommand(directory)
    try:
        yield ctx
    except (EpisodeError, SilenceError, ValueError) as exc:
        fail(str(exc))
    except SQLAlchemyError as exc:
        url = make_url(ctx.config.settings.database.url).render_as_string(hide_password=True)
        fail(f"database {url}: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
    finally:
        if ctx._store is not None:
            ctx._store.engine.dispose()


def console() -> Console:
    # Piped or captured output gets a wide fixed width, so that ids are never folded.
    return Console(width=None if sys.stdout.isatty() else 200, highlight=False)


def table(title: str, heads: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table | str:
    """A rich table, or a one-line note when there is nothing to show."""
    if not rows:
        return f"{title}: 无 (none)"
    grid = Table(title=title)
    for head in heads:
        grid.add_column(head, no_wrap=True)
    for row in rows:
        grid.add_row(*row)
    return grid


def print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
