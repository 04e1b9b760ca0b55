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

from config.loader import ConfigError, load_config
from config.models import Config

__all__ = ["LOADED_AT", "RELOADS", "applied", "reload_config"]

log = logging.getLogger("hazwatch.config")

RELOADS = Counter("hazwatch_config_reloads_total", "Configuration reloads asked for (SIGHUP), by outcome", ["result"])
LOADED_AT = Gauge("hazwatch_config_loaded_timestamp_seconds", "When the configuration in force was loaded")


def reload_config(directory: Path | None, in_force: Config, *, service: str,
                  fixed: Callable[[Config, Config], str | None]) -> Config | None:
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
    log.error("%s: configuration in %s not reloaded, the one in force stays: %s", service, directory, why)
    RELOADS.labels("refused").inc()
    return None


def applied(service: str, directory: Path | None, summary: str) -> None:
    """Count and log a reload that was applied."""
    RELOADS.labels("applied").inc()
    LOADED_AT.set(time.time())
    log.warning("%s: configuration reloaded from %s: %s", service, directory, summary)
