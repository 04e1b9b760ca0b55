"""What the provider fakes share: failure injection, the control API, and a uvicorn thread.

Control API (no auth), on every fake:

    POST /_fake/fail      {"mode", "count": N, "to": optional, "delay_s": optional}
    GET  /_fake/messages?since=N    what the fake accepted, in order, and "next"
    POST /_fake/reset

Fail modes, each for the next N sends (to ``to`` if given; the first matching rule is taken):

| mode               | the fake                                                     |
|--------------------|--------------------------------------------------------------|
| ``rate-limit``     | the provider's rate-limit answer, nothing recorded           |
| ``invalid-number`` | the provider's invalid-number answer, nothing recorded       |
| ``invalid-template``| the provider's template refusal, nothing recorded           |
| ``503``            | HTTP 503, nothing recorded                                   |
| ``500``            | records the message, then answers HTTP 500                   |
| ``timeout``        | records the message, answers after ``delay_s`` (too late)    |
| ``drop``           | records the message, then drops the connection mid-answer    |
| ``undelivered``    | takes the message; its delivery receipt says undelivered     |

``500``, ``timeout`` and ``drop`` are the crash in flight: the provider took the message but the
client never learns it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Self

import uvicorn
from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Dropped", "FailMode", "FailRule", "FailRuleBase", "FailRules", "FakeServer", "FakeState",
           "add_fail_route", "command_line", "create_base_app", "hold", "serve_forever"]

log = logging.getLogger(__name__)

FailMode = Literal["rate-limit", "invalid-number", "invalid-template", "503", "500", "timeout", "drop", "undelivered"]


class FailRuleBase(BaseModel):
    """Body of ``POST /_fake/fail``; each fake names its own ``mode``s."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=1, ge=1)
    to: str | None = None
    delay_s: float = Field(default=5.0, ge=0)  # "timeout" only: how long the answer is held


class FailRule(FailRuleBase):
    mode: FailMode


class FailRules:
    """The pending fail rules of a fake: each is good for its next ``count`` sends to ``to`` (to
    anyone if None), and the first matching rule is taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[dict[str, Any]] = []

    def add(self, rule: FailRuleBase) -> int:
        """Queue ``rule``; the number of rules now pending."""
        with self._lock:
            self._rules.append(rule.model_dump())
            return len(self._rules)

    def take(self, to: str | None) -> dict[str, Any] | None:
        with self._lock:
            for rule in self._rules:
                if rule["to"] in (None, to):
                    rule["count"] -= 1
                    if rule["count"] <= 0:
                        self._rules.remove(rule)
                    return rule
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


def add_fail_route(app: FastAPI, model: type[FailRuleBase], rules: FailRules) -> None:
    """``POST /_fake/fail`` on ``app``, validated by ``model`` (the fake's own modes)."""

    async def add_fail_rule(rule: FailRuleBase) -> dict[str, Any]:
        return {"ok": True, "rules": rules.add(rule)}

    add_fail_rule.__annotations__["rule"] = model  # FastAPI validates the body by this annotation
    app.post("/_fake/fail")(add_fail_rule)


class FakeState:
    """Accepted messages and pending fail rules, shared by the app's handlers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rules = FailRules()
        self.messages: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.messages.append(record)

    def find(self, match: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.messages if match(m)]


class Dropped(Response):
    """An answer that promises 1000 bytes, sends two and ends: the server closes the connection
    with the answer unfinished, as when a provider's front end dies mid-response."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")]})
        await send({"type": "http.response.body", "body": b'{"', "more_body": True})


async def hold(rule: dict[str, Any] | None) -> None:
    """A ``timeout`` rule: keep the answer back for its ``delay_s``."""
    if rule is not None and rule["mode"] == "timeout":
        await asyncio.sleep(rule["delay_s"])


def create_base_app(title: str) -> tuple[FastAPI, FakeState]:
    """An app with the control API; the provider module adds its own routes."""
    state = FakeState()
    app = FastAPI(title=title, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.fake = state

    add_fail_route(app, FailRule, state.rules)

    @app.get("/_fake/messages")
    async def accepted(since: int = 0) -> dict[str, Any]:
        with state.lock:
            return {"messages": state.messages[max(since, 0):], "next": len(state.messages)}

    @app.post("/_fake/reset")
    async def reset() -> dict[str, bool]:
        state.rules.clear()
        with state.lock:
            state.messages.clear()
        return {"ok": True}

    return app, state


class FakeServer:
    """An app served by uvicorn in a background thread; ``port=0`` picks a free port."""

    def __init__(self, app: FastAPI, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.name, self.host, self.port = app, name, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def state(self) -> FakeState:
        state: FakeState = self.app.state.fake
        return state

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout_s: float = 10.0) -> Self:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))  # here, so that port 0 resolves before uvicorn starts
        self.port = sock.getsockname()[1]
        # "critical": a dropped answer (fail mode "drop") is logged by uvicorn as an error
        config = uvicorn.Config(self.app, log_level="critical", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():  # e.g. a held "timeout" answer
            self._server.force_exit = True
            self._thread.join(timeout=2.0)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def command_line(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The fake's command line, ``python -m <module> --host H --port N``; a fake adds its own options."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    return parser


def serve_forever(server: FakeServer, announce: str = "") -> int:
    """Run ``server`` until SIGINT or SIGTERM; print its URL first (the demo reads it)."""
    logging.basicConfig(level=logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before the URL: whoever reads it may stop us
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"{server.name} listening on {server.url}{announce}", flush=True)
    try:
        while server.running and not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
