"""A local fake of DingTalk (钉钉) group robot webhooks, for tests and the demo.

``POST /robot/send?access_token=TOKEN[&timestamp=MS&sign=SIGN]`` with ``{"msgtype":
"markdown", "markdown": {"title", "text"}}`` (or ``"text"`` with ``{"content"}``). A robot given a
secret verifies the signature as DingTalk does: ``sign`` must be base64(HMAC-SHA256(secret,
"timestamp\\nsecret")) and the timestamp within an hour of the fake's clock, else errcode
310000. Answers: ``{"errcode": 0, "errmsg": "ok"}``; 300001 for an unknown token; 40035 for a
missing field. Failure injection (:mod:`alerts.fakes.server`; ``to`` is the robot's token):
rate limit 130101 ``send too fast``; invalid number or template (a robot has neither) 40035.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from alerts.fakes.server import Dropped, FakeServer, command_line, create_base_app, hold, serve_forever

__all__ = ["DEFAULT_ROBOTS", "create_app", "main", "server"]

DEFAULT_ROBOTS: dict[str, str | None] = {"fake-dingtalk-token": "SECfake-dingtalk-secret"}
MAX_SKEW_MS = 3600 * 1000


def _answer(code: int, message: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": message}, status_code=status)


def _signed(secret: str, timestamp: str, given: str) -> bool:
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), given)


def create_app(robots: Mapping[str, str | None] | None = None) -> Any:
    app, state = create_base_app("fake-dingtalk-robot")
    tokens = dict(DEFAULT_ROBOTS if robots is None else robots)

    @app.post("/robot/send")
    async def send(request: Request, access_token: str = "", timestamp: str = "", sign: str = "") -> JSONResponse:
        if access_token not in tokens:
            return _answer(300001, "token is not exist")
        secret = tokens[access_token]
        if secret is not None:
            if not timestamp.isdigit() or abs(int(timestamp) - time.time() * 1000) > MAX_SKEW_MS:
                return _answer(310000, "invalid timestamp")
            if not _signed(secret, timestamp, sign):
                return _answer(310000, "sign not match")
        try:
            body = json.loads(await request.body())
            msgtype = body["msgtype"]
            fields = body[msgtype]
            text = fields["text"] if msgtype == "markdown" else fields["content"]
            title = fields["title"] if msgtype == "markdown" else ""
        except (ValueError, KeyError, TypeError):
            return _answer(40035, "缺少参数 json")
        if msgtype not in ("markdown", "text") or not text or (msgtype == "markdown" and not title):
            return _answer(40035, "缺少参数 json")
        rule = state.rules.take(access_token)
        mode = rule["mode"] if rule else None
        if mode == "rate-limit":
            return _answer(130101, "send too fast, exceed 20 times per minute")
        if mode in ("invalid-number", "invalid-template"):
            return _answer(40035, "缺少参数 json")
        if mode == "503":
            return _answer(-1, "系统繁忙", 503)
        state.add({"to": access_token, "msgtype": msgtype, "title": title, "text": text,
                   "signed": secret is not None})
        if mode == "drop":
            return Dropped()
        if mode == "500":
            return _answer(-1, "系统错误", 500)
        await hold(rule)
        return _answer(0, "ok")

    return app


def server(robots: Mapping[str, str | None] | None = None, host: str = "127.0.0.1", port: int = 0) -> FakeServer:
    """The fake, not yet started; ``robots`` maps access tokens to secrets (None: unsigned)."""
    return FakeServer(create_app(robots), "fake-dingtalk-robot", host, port)


def main(argv: list[str] | None = None) -> int:
    parser = command_line("alerts.fakes.dingtalk_robot", __doc__)
    parser.add_argument("--robot", action="append", metavar="TOKEN[:SECRET]",
                        help="a robot it knows (default: the built-in fake token and secret)")
    args = parser.parse_args(argv)
    robots = None if not args.robot else {t: (s or None) for t, _, s in (r.partition(":") for r in args.robot)}
    return serve_forever(server(robots, args.host, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
