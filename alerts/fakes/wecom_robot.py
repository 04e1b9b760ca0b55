"""A local fake of WeCom (企业微信) group robot webhooks, for tests and the demo.

``POST /cgi-bin/webhook/send?key=KEY`` with ``{"msgtype": "markdown", "markdown": {"content"}}``
(or ``"text"`` with ``{"content"}``), answered as WeCom does: ``{"errcode": 0, "errmsg": "ok"}``,
93000 for a key the fake does not know, 40058 for content over 4096 bytes, 40008 for another
message type. Failure injection (:mod:`alerts.fakes.server`; ``to`` is the robot's key): rate
limit 45009 ``api freq out of limit``; invalid number or template (a robot has neither) 40008.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from alerts.fakes.server import Dropped, FakeServer, command_line, create_base_app, hold, serve_forever

__all__ = ["DEFAULT_KEY", "create_app", "main", "server"]

DEFAULT_KEY = "fake-wecom-robot-key"
MAX_BYTES = 4096


def _answer(code: int, message: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": message}, status_code=status)


def create_app(keys: Iterable[str] = (DEFAULT_KEY,)) -> Any:
    app, state = create_base_app("fake-wecom-robot")
    known = set(keys)

    @app.post("/cgi-bin/webhook/send")
    async def send(request: Request, key: str = "") -> JSONResponse:
        if key not in known:
            return _answer(93000, "invalid webhook url, hint: [1700000000_1_x], from ip: 127.0.0.1")
        try:
            body = json.loads(await request.body())
            msgtype = body["msgtype"]
            content = body[msgtype]["content"]
        except (ValueError, KeyError, TypeError):
            return _answer(40008, "invalid message type")
        if msgtype not in ("markdown", "text") or not isinstance(content, str) or not content:
            return _answer(40008, "invalid message type")
        if len(content.encode("utf-8")) > MAX_BYTES:
            return _answer(40058, f"{msgtype}.content exceed max length {MAX_BYTES}")
        rule = state.rules.take(key)
        mode = rule["mode"] if rule else None
        if mode == "rate-limit":
            return _answer(45009, "api freq out of limit")
        if mode in ("invalid-number", "invalid-template"):
            return _answer(40008, "invalid message type")
        if mode == "503":
            return _answer(-1, "system busy", 503)
        state.add({"to": key, "msgtype": msgtype, "content": content})
        if mode == "drop":
            return Dropped()
        if mode == "500":
            return _answer(-1, "system error", 500)
        await hold(rule)
        return _answer(0, "ok")

    return app


def server(keys: Iterable[str] = (DEFAULT_KEY,), host: str = "127.0.0.1", port: int = 0) -> FakeServer:
    """The fake, not yet started; ``url`` is the robots' base URL."""
    return FakeServer(create_app(keys), "fake-wecom-robot", host, port)


def main(argv: list[str] | None = None) -> int:
    parser = command_line("alerts.fakes.wecom_robot", __doc__)
    parser.add_argument("--key", action="append", help=f"a robot key it knows (default {DEFAULT_KEY})")
    args = parser.parse_args(argv)
    return serve_forever(server(args.key or [DEFAULT_KEY], args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
