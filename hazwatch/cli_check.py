"""``hazwatch check-config DIR [--strict]``: every error, then the warnings, in the operator's terms.

Mounted by :mod:`hazwatch.cli` (``app.command("check-config")(check_config)``). Errors
(:func:`config.load_config`, then :func:`config.channel_checks.channel_errors`: a routed channel
whose settings are missing or incomplete, with the process environment) and warnings (:func:`config.checks.config_warnings`) are printed on
stderr as ``DIR/FILE: PATH: REASON`` (a warning's reason starts with ``warning:``), the summary on
stdout. Exit codes (:class:`config.exit_codes.ExitCode`): 0 valid (warnings or not), 2 invalid,
and 2 with ``--strict`` when there are warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from config import ConfigError, ConfigIssue, load_config
from config.channel_checks import channel_errors
from config.checks import config_warnings
from config.exit_codes import ExitCode

__all__ = ["check_config"]


def _line(directory: Path, issue: ConfigIssue, prefix: str = "") -> str:
    # An issue about a file outside the directory (a secret's *_FILE) names it absolutely.
    return f"{directory / issue.file}: {issue.path or '<root>'}: {prefix}{issue.reason}"


def _fail(directory: Path, errors: list[ConfigIssue]) -> NoReturn:
    for issue in errors:
        typer.echo(_line(directory, issue), err=True)
    typer.echo(f"{len(errors)} error(s)", err=True)
    raise typer.Exit(ExitCode.USAGE)


def check_config(
    directory: Annotated[Path, typer.Argument(help="Configuration directory")],
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 2) on warnings too")] = False,
) -> None:
    """Validate a configuration: every error with file, path and reason (also a routed channel
    whose settings or secrets are missing), then warnings (a site
    whose red warnings reach nobody, a ladder beyond its sensor's range, a zone without
    subscribers, an escalation tier without regulator, no operator). Exit 0 valid, 2 invalid (or
    warnings with --strict)."""
    try:
        cfg = load_config(directory)
    except ConfigError as exc:
        _fail(directory, exc.issues)
    errors = channel_errors(cfg.settings)
    if errors:
        _fail(directory, errors)
    warnings = config_warnings(cfg)
    for issue in warnings:
        typer.echo(_line(directory, issue, "warning: "), err=True)
    if warnings and strict:
        typer.echo(f"{len(warnings)} warning(s); --strict fails on warnings", err=True)
        raise typer.Exit(ExitCode.USAGE)
    n_sensors = sum(len(s.sensors) for s in cfg.sites)
    n_rules = sum(len(x.thresholds) for s in cfg.sites for x in s.sensors)
    typer.echo(f"OK: {len(cfg.sites)} sites, {n_sensors} sensors, {n_rules} rules, "
               f"{len(cfg.zones)} zones, {len(cfg.recipients)} recipients"
               + (f"; {len(warnings)} warning(s)" if warnings else ""))
