"""A worker beside a service's loop: a daemon thread running ``_run`` until :meth:`stop`.

What the console's live reader, the control listener and the alerts service's receipt poller
share: ``stopping`` (an event ``_run`` waits on, so that a stop is seen within its wait), start
and a bounded stop. Imports nothing of hazwatch, so every service may use it."""

from __future__ import annotations

import threading
from typing import Self

__all__ = ["Background"]


class Background:
    thread_name = "hazwatch-background"
    stop_timeout_s = 5.0

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = None) -> None:
        """Ask ``_run`` to end and wait for it (at most ``timeout_s``, default ``stop_timeout_s``)."""
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(self.stop_timeout_s if timeout_s is None else timeout_s)

    def _run(self) -> None:
        raise NotImplementedError
