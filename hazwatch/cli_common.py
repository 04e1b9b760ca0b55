"""What every ``hazwatch`` sub-command module shares: the ``--config`` option and loading it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from config import ConfigError, example_dir, load_config
from config.models import Config

__all__ = ["ConfigDir", "load_config_or_exit"]

ConfigDir = Annotated[Path | None, typer.Option("--config", "-c", help="Configuration directory (default: the example).")]


def load_config_or_exit(directory: Path | None) -> Config:
    """The configuration in ``directory`` (default: the example); on errors, print each one
    (file, path, reason) and exit with status 2."""
    try:
        return load_config(directory or example_dir())
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
