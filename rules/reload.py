"""Reloading the rules worker's configuration without a restart (SIGHUP), and without losing state.

Thresholds, rules, sites and sensors change in daily work. On SIGHUP the worker reads its
configuration directory again, at the end of a turn of its loop (never inside one, like a
hand-over, rules.handover):

1. the directory is loaded and validated as at start (``config.load_config``): if it does not
   validate, the old configuration stays, and an ERROR names every file, path and reason;
2. a change the worker cannot apply while running (Kafka's bootstrap or partition counts) is refused
   the same way: those need a restart;
3. a snapshot is written and its offsets committed (``snapshot(commit=True)``), so the changelog
   holds every loaded site's state as of this moment;
4. a new :class:`rules.engine.Engine` is built from the new configuration and the sites are
   marked not loaded: each gets its state back from the changelog into the new engine when it is
   next needed (``load``, the engine's ``import_site``, as after a hand-over). A sensor's level,
   episode and windows are kept where its rule still exists, so a warning already raised is not
   raised again, and the next reading is judged by the new thresholds. Sites that are gone are
   not loaded again; new ones start fresh.

The outcome is counted as every service's (config/reload.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from config.reload import applied, reload_config
from rules.engine import Engine

if TYPE_CHECKING:
    from config.models import Config
    from hazwatch.control import ControlListener

__all__ = ["Reload", "unreloadable"]


def unreloadable(old: Config, new: Config) -> str | None:
    """Why ``new`` cannot replace ``old`` in a running worker, or None."""
    if new.settings.kafka != old.settings.kafka:
        return "the kafka settings changed (bootstrap, partitions, replication): restart the worker to apply them"
    return None


class Reload:
    """Mixed into :class:`rules.worker.RulesWorker`."""

    config: Config
    config_dir: Path | None
    engine: Engine
    started_ms: int
    loaded: set[str]
    ready: bool
    reload_requested: bool = False
    control: ControlListener | None = None
    """Follows the control topic (hazwatch/control.py): a reload asked for in the console."""

    def request_reload(self) -> None:
        """The SIGHUP handler: the reload happens at the end of the current turn."""
        self.reload_requested = True

    async def snapshot(self, *, commit: bool = False) -> None:  # provided by rules.handover
        raise NotImplementedError

    def _configured(self, config: Config) -> None:  # provided by the worker
        raise NotImplementedError

    async def reload(self) -> bool:
        """Apply the configuration directory as it is now (module docstring); whether it was."""
        self.reload_requested = False
        report = self.control.reporter() if self.control is not None else None
        new = reload_config(self.config_dir, self.config, service="rules", fixed=unreloadable, report=report)
        if new is None:
            return False
        if self.ready:
            await self.snapshot(commit=True)  # the changelog holds every loaded site's state
        engine = Engine(new, started_ms=self.started_ms)
        engine.warm_up()
        old, kept = self.config, len(self.loaded & {s.id for s in new.sites})
        self.engine = engine
        self._configured(new)
        self.loaded.clear()  # each site's state comes back from the changelog into the new engine (load)
        applied("rules", self.config_dir, old, new, report,
                note=f"rule state kept for the {kept} loaded sites that remain")
        return True
