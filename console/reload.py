"""The console's configuration reload: its own, and the one an admin asks of every service.

``POST /api/config/reload`` (console/api_config.py) calls :func:`reload_everywhere`:

1. the configuration directory is loaded and validated as at start; if it does not validate, or
   changes what the console cannot change while it runs (:func:`unreloadable`), nothing changes
   anywhere and the admin is told every reason;
2. what changed (config/diff.py) is published as a reload request on the control topic
   (hazwatch/control.py), which every service follows: each validates the directory itself,
   applies it (the rules worker keeping its rule state) and publishes its outcome;
3. the console puts it in force itself (:func:`apply`): the live picture keeps every sensor that
   still exists, with its latest value, trend and quality;
4. the audit table records who asked, and what changed (action ``config_reload``); a refused
   reload is recorded too (``config_reload_refused``, with the reasons).

SIGHUP reloads the console alone (:func:`reload_here`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from alerts.store import Action
from config.diff import changes, summary
from config.loader import ConfigError, load_config
from config.models import Config
from config.reload import applied, refused
from console.live import LiveState

if TYPE_CHECKING:
    from console.app import ConsoleContext

__all__ = ["Outcome", "apply", "reload_everywhere", "reload_here", "remap_live", "unreloadable"]

log = logging.getLogger("hazwatch.console")

_PER_SENSOR = ("latest_v", "latest_ts", "seq", "fault_bits", "fault_since", "spike_ms", "health_seen",
               "first_seen", "offline_since")
_KEPT = ("clock", "history_ms", "_lock", "_seq", "_subscribers", "first_ms", "presence", "records", "errors")


def unreloadable(old: Config, new: Config) -> str | None:
    """What the console cannot change while it runs, or None."""
    a, b = old.settings, new.settings
    listen = {"host": a.console.host, "port": a.console.port}  # the command line's may differ from the file's
    b = b.model_copy(update={"console": b.console.model_copy(update=listen)})
    if changed := [k for k in ("console", "database", "kafka", "history") if getattr(a, k) != getattr(b, k)]:
        return f"the {', '.join(changed)} settings changed: restart the console to apply them"
    return None


def remap_live(live: LiveState, config: Config) -> None:
    """Put ``config`` in force in ``live`` in place: sensors that remain keep their latest value,
    trend, quality and online history; new ones start empty; removed ones are forgotten. Event
    stream subscribers stay subscribed."""
    fresh = LiveState(config, history_hours=live.history_ms / 3_600_000, clock=live.clock)
    both = [(live.index[k], i) for i, k in enumerate(fresh.keys) if k in live.index]
    old_idx = np.array([o for o, _ in both], dtype=np.int64)
    new_idx = np.array([n for _, n in both], dtype=np.int64)
    moved = {int(o): int(n) for o, n in both}
    with live._lock:  # noqa: SLF001 - the state's own lock: readers see the old or the new picture
        for name in _PER_SENSOR:
            getattr(fresh, name)[new_idx] = getattr(live, name)[old_idx]
        trend = live.trend
        row_of = np.full(len(fresh.keys), -1, dtype=np.int64)
        row_of[new_idx] = trend.row_of[old_idx]
        trend.row_of = row_of  # the rows of removed sensors stay allocated, unused
        fresh.trend = trend
        fresh._offline_ended = deque((moved[i], a, b) for i, a, b in live._offline_ended  # noqa: SLF001
                                     if i in moved)
        fresh.warnings = {s.id: live.warnings.get(s.id, {}) for s in config.sites}
        for name in _KEPT:
            setattr(fresh, name, getattr(live, name))
        live.__dict__.update(fresh.__dict__)


def apply(ctx: ConsoleContext, new: Config) -> None:
    """Put ``new`` in force in the console."""
    remap_live(ctx.live, new)
    ctx.config = new


@dataclass
class Outcome:
    """What :func:`reload_everywhere` did: ``applied``, or the reasons it did not."""

    applied: bool
    changes: list[str]
    issues: list[dict[str, str]]
    request: str | None = None


def _load(ctx: ConsoleContext) -> tuple[Config | None, list[dict[str, str]]]:
    if ctx.config_dir is None:
        return None, [{"file": "", "path": "", "reason": "the console was not started from a configuration directory"}]
    try:
        new = load_config(ctx.config_dir)
    except ConfigError as exc:
        return None, [{"file": i.file, "path": i.path, "reason": i.reason} for i in exc.issues]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, [{"file": str(getattr(exc, "filename", "") or ""), "path": "",
                       "reason": f"{exc.__class__.__name__}: {exc}"}]
    if why := unreloadable(ctx.config, new):
        return None, [{"file": "hazwatch.yaml", "path": "", "reason": why}]
    listen = {"host": ctx.config.settings.console.host, "port": ctx.config.settings.console.port}
    console = new.settings.console.model_copy(update=listen)
    return new.model_copy(update={"settings": new.settings.model_copy(update={"console": console})}), []


def _audit(ctx: ConsoleContext, action: str, actor: str, text: str) -> None:
    with ctx.store.session.begin() as s:
        s.add(Action(action=action, actor=actor, at=ctx.now(), text=text))


def reload_everywhere(ctx: ConsoleContext, by: str) -> Outcome:
    """The admin ``by`` asks every service to reload (module docstring). Raises what the control
    topic's producer raises when Kafka did not acknowledge the request: the console then did not
    change, and the request may still have reached some services. One reload at a time."""
    with ctx.reload_lock:
        return _reload_everywhere(ctx, by)


def _reload_everywhere(ctx: ConsoleContext, by: str) -> Outcome:
    from hazwatch.control import new_request, request_reload

    new, issues = _load(ctx)
    if new is None:
        reason = "; ".join(f"{i['file']}: {i['path']}: {i['reason']}".replace(": : ", ": ") for i in issues)
        refused("console", ctx.config_dir, reason)
        _audit(ctx, "config_reload_refused", by, reason[:4000])
        return Outcome(False, [], issues)
    lines = changes(ctx.config, new)
    request = None
    if ctx.reader is not None:  # the services follow the control topic on the same Kafka
        request = new_request()
        ctx.own_requests.add(request)  # before it is sent: this console's listener sees it too
        request_reload(ctx.config.settings.kafka.bootstrap, request, by=by, changes=lines)
    old = ctx.config
    apply(ctx, new)
    applied("console", ctx.config_dir, old, new, lines=lines)
    _audit(ctx, "config_reload", by, ("; ".join(lines) or "no change")[:4000])
    ctx.outcomes.appendleft({"type": "reloaded", "request": request, "service": "console",
                             "instance": f"{socket.gethostname()}:{os.getpid()}", "result": "applied",
                             "detail": summary(lines), "at": int(ctx.now().timestamp() * 1000)})
    return Outcome(True, lines, [], request)


def reload_here(ctx: ConsoleContext, request: dict[str, Any] | None = None) -> bool:
    """The console alone reads its directory again (SIGHUP, or another console's request)."""
    if request is not None and request.get("id") in ctx.own_requests:
        return True  # this console asked: already in force
    with ctx.reload_lock:
        return _reload_here(ctx)


def _reload_here(ctx: ConsoleContext) -> bool:
    new, issues = _load(ctx)
    if new is None:
        refused("console", ctx.config_dir, "; ".join(i["reason"] for i in issues))
        return False
    old = ctx.config
    apply(ctx, new)
    applied("console", ctx.config_dir, old, new)
    return True
