"""What every ``hazwatch`` sub-command module shares: the ``--config`` option, loading it, and the
exit codes (:class:`config.exit_codes.ExitCode`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from config import ConfigError, example_dir, load_config
from config.exit_codes import ExitCode
from config.models import Config

__all__ = ["ConfigDir", "ExampleConfigDir", "ExitCode", "exit_with", "load_config_or_exit", "no_config_message"]

ConfigDir = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Configuration directory (required; the example configuration is the demo's).")]
ExampleConfigDir = Annotated[Path | None, typer.Option(
    "--config", "-c", help="Configuration directory (default: the example).")]


def exit_with(code: ExitCode, message: str) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code``."""
    typer.echo(message, err=True)
    raise typer.Exit(int(code))


def no_config_message() -> str:
    example = example_dir()
    return (f"error: no configuration: give --config DIR, the directory of this site's configuration "
            f"(hazwatch check-config DIR checks it). The example configuration ({example}) is the demo's: "
            f"its brokers, database and phone numbers are not this site's. To run on it deliberately, "
            f"pass --config {example}")


def load_config_or_exit(directory: Path | None, *, example_default: bool = False, warn: bool = False) -> Config:
    """The configuration in ``directory``. Without one: the example if ``example_default`` (the
    demo and its tools), else exit 2 naming ``--config``. On errors, print each one (file, path,
    reason) and exit 2. With ``warn``, print its warnings (``config.checks``) on stderr: the
    services whose work they concern (rules, alerts) say so when they start."""
    if directory is None:
        if not example_default:
            exit_with(ExitCode.USAGE, no_config_message())
        directory = example_dir()
    try:
        cfg = load_config(directory)
    except ConfigError as exc:
        exit_with(ExitCode.USAGE, str(exc))
    if warn:
        from config.checks import config_warnings

        for w in config_warnings(cfg):
            typer.echo(f"warning: {directory / w.file}: {w.path or '<root>'}: {w.reason}", err=True)
    return cfg
