"""Running the console: under uvicorn in this process (``hazwatch console``), in a thread of a
test (:class:`ConsoleServer`), or as a child process of an embedded stack (:func:`start_console`).

Readiness is ``GET /api/health`` -> ``{"ok": true, "live": ...}`` (``live``: the Kafka reader is
following; readiness does not wait for it).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from alerts.store import Store
from config.console import ConsoleSettings
from config.models import Config
from console.app import create_app
from console.live import LiveState
from console.live_reader import LiveReader
from hazwatch.runtime import EmbeddedStack, Process, RuntimeStartError, free_port, wait_for
from history.reader import reader_for

__all__ = ["SHUTDOWN_GRACE_S", "ConsoleServer", "StoppingServer", "build", "healthy", "listening_on", "serve",
           "start_console", "uvicorn_config"]


def build(config: Config, *, kafka: bool = True, config_dir: Path | None = None) -> FastAPI:
    """The production wiring: the store of ``settings.database.url`` and, with ``kafka``, a live
    reader on ``settings.kafka.bootstrap``; ``config_dir``: where ``config`` was loaded from
    (``GET /api/config`` validates it again)."""
    settings = config.settings
    # 1. the store (migrated: the console may be the first service on a fresh database)
    store = Store(settings.database.url)
    # 2. the live picture and its Kafka reader
    live = LiveState(config, history_hours=settings.console.history_hours)
    reader = LiveReader(settings.kafka.bootstrap, live) if kafka else None
    # 3. the history store, for trends beyond the live view's hours
    history = reader_for(settings.history)
    # 4. the app
    return create_app(config, store, live, reader=reader, config_dir=config_dir, history=history)


def listening_on(config: Config, host: str | None = None, port: int | None = None) -> Config:
    """``config`` with ``console.host``/``console.port`` replaced by the command line's: what
    depends on the listen address (the ``Secure`` cookie flag) must see the real one."""
    update = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if not update:
        return config
    console = config.settings.console.model_copy(update=update)
    return config.model_copy(update={"settings": config.settings.model_copy(update={"console": console})})


SHUTDOWN_GRACE_S = 5
"""How long a stopping console lets requests in flight finish before it cancels them. The event
streams end at once (:class:`StoppingServer`); this bounds the rest, under the 10 s that Docker and
the embedded runtime give before SIGKILL."""


class StoppingServer(uvicorn.Server):
    """uvicorn's server, whose ``should_exit`` (set by SIGINT/SIGTERM or by a caller) is the app's
    ``stopping`` event: the console's event streams see it and end, so a browser left open does not
    hold the graceful shutdown until it leaves."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        self._stopping = stopping
        super().__init__(config)

    @property  # type: ignore[override]
    def should_exit(self) -> bool:
        return self._stopping.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if value:
            self._stopping.set()
        else:
            self._stopping.clear()


def uvicorn_config(app: FastAPI, settings: ConsoleSettings) -> uvicorn.Config:
    """How uvicorn serves the app. Behind a reverse proxy listed in ``console.trusted_proxies``,
    the client address comes from its ``X-Forwarded-For`` (the log-in limit is per address);
    from anyone else those headers are ignored."""
    proxies = list(settings.trusted_proxies)
    return uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                          access_log=False, proxy_headers=bool(proxies),
                          forwarded_allow_ips=",".join(proxies) if proxies else None,
                          timeout_graceful_shutdown=SHUTDOWN_GRACE_S)


def serve(config: Config, *, host: str | None = None, port: int | None = None,
          config_dir: Path | None = None) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles both). Once the socket listens, the process id
    goes to ``HAZWATCH_READY_FILE`` if set (the container health check, like the other services)."""
    config = listening_on(config, host, port)
    app = build(config, config_dir=config_dir)
    server = StoppingServer(uvicorn_config(app, config.settings.console), app.state.console.stopping)

    def reload_on_sighup(*_: object) -> None:  # the console alone (console/reload.py), off the signal handler
        from console.reload import reload_here

        threading.Thread(target=reload_here, args=(app.state.console,), name="console-reload", daemon=True).start()
    signal.signal(signal.SIGHUP, reload_on_sighup)
    ready_file = os.environ.get("HAZWATCH_READY_FILE")
    if ready_file:
        def mark_ready() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                Path(ready_file).write_text(str(os.getpid()))

        threading.Thread(target=mark_ready, name="console-ready", daemon=True).start()
    server.run()


def healthy(base_url: str) -> bool:
    r = httpx.get(f"{base_url}/api/health", timeout=2.0, trust_env=False)
    return r.status_code == 200 and r.json().get("ok") is True


class ConsoleServer:
    """A console app served by uvicorn in a thread of this process, on a free port::

        with ConsoleServer(app) as server:
            httpx.get(server.url + "/api/health")
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port()
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", access_log=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
        self.server = StoppingServer(config, app.state.console.stopping)
        self.thread = threading.Thread(target=self.server.run, name="console-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ConsoleServer:
        self.thread.start()
        wait_for(lambda: self.server.started and healthy(self.url), 30, "console (in-process)")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> ConsoleServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_console(stack: EmbeddedStack, config_dir: Path, *, port: int | None = None,
                  name: str = "console", timeout_s: float = 60) -> tuple[Process, str]:
    """``hazwatch console --config DIR --port P`` as a child of ``stack`` (its Kafka and, after
    :func:`hazwatch.demo.start_services`, its database through ``stack.extra_env``); waits for
    ``/api/health``. Returns the process and the base URL."""
    port = port or free_port()
    proc = stack.hazwatch(name, "console", "--config", str(config_dir), "--host", "127.0.0.1",
                          "--port", str(port))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeStartError(f"console exited:\n{proc.log_tail()}")
        return healthy(url)

    try:
        wait_for(ready, timeout_s, "console", poll_s=0.2)
    except RuntimeStartError as exc:
        raise RuntimeStartError(f"{exc}\n--- {proc.log_path} ---\n{proc.log_tail()}") from None
    return proc, url
