"""Reading a service's configuration directory again while it runs (SIGHUP): validated first, and
refused with every reason when it does not validate or changes what needs a restart.

Each service says what it cannot change while running (``fixed``) and applies the new
configuration itself (rules/reload.py: with the rule state kept; ingest: a swap). The outcome is
counted in ``hazwatch_config_reloads_total{result}`` (``applied`` or ``refused``) and the time of
the configuration in force is ``hazwatch_config_loaded_timestamp_seconds``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Counter, Gauge

from config.diff import changes, summary
from config.loader import ConfigError, load_config
from config.models import Config

__all__ = ["LOADED_AT", "RELOADS", "Report", "applied", "refused", "reload_config"]

Report = Callable[[str, str], None]
"""Told the outcome of a reload: ``(result, detail)``, result ``applied`` or ``refused`` (a
service that follows the control topic publishes it there, hazwatch/control.py)."""

log = logging.getLogger("hazwatch.config")

RELOADS = Counter("hazwatch_config_reloads_total", "Configuration reloads asked for (SIGHUP), by outcome", ["result"])
LOADED_AT = Gauge("hazwatch_config_loaded_timestamp_seconds", "When the configuration in force was loaded")


def reload_config(directory: Path | None, in_force: Config, *, service: str,
                  fixed: Callable[[Config, Config], str | None], report: Report | None = None) -> Config | None:
    """The configuration in ``directory`` now, or None (refused, logged as an ERROR) when there is
    no directory, it does not validate, or ``fixed(in_force, new)`` names a change that needs a
    restart."""
    if directory is None:
        why = "it was not started from a configuration directory"
    else:
        try:
            new = load_config(directory)
        except ConfigError as exc:
            why = f"\n{exc}"
        else:
            if (why_fixed := fixed(in_force, new)) is None:
                return new
            why = why_fixed
    refused(service, directory, why, report)
    return None


def refused(service: str, directory: Path | None, why: str, report: Report | None = None) -> None:
    """Count and log a reload that was refused, and why."""
    log.error("%s: configuration in %s not reloaded, the one in force stays: %s", service, directory, why)
    RELOADS.labels("refused").inc()
    if report is not None:
        report("refused", why.strip())


def applied(service: str, directory: Path | None, old: Config, new: Config, report: Report | None = None,
            note: str = "", lines: list[str] | None = None) -> list[str]:
    """Count and log a reload that was applied; what changed (config/diff.py, or ``lines`` when
    already known)."""
    lines = changes(old, new) if lines is None else lines
    RELOADS.labels("applied").inc()
    LOADED_AT.set(time.time())
    detail = summary(lines) + (f" ({note})" if note else "")
    log.warning("%s: configuration reloaded from %s: %s", service, directory, detail)
    if report is not None:
        report("applied", detail)
    return lines
