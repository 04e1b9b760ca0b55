"""A local fake of the Twilio Messages API (2010-04-01), for tests and the demo (its state and
message lifecycle: :mod:`alerts.fakes.twilio_state`).

The real ``twilio`` client talks to it after ``client.api.base_url = "http://127.0.0.1:PORT"``.
Implemented: create, list (``To``, ``From``, ``DateSent>``, ``DateSent<``, paging, newest first)
and fetch of Message resources, HTTP basic auth, and signed status callbacks
(``X-Twilio-Signature``, computed with ``twilio.request_validator.RequestValidator``).

Control API (no auth): ``POST /_fake/fail``, ``GET /_fake/messages?since=N``,
``GET /_fake/callbacks?since=N``, ``POST /_fake/reset``.

Fail modes (``POST /_fake/fail {"mode", "count": N, "to": optional, "delay_s": optional}``;
each of the next N creates, to ``to`` if given, takes the first matching rule):

| mode          | create answer                  | then                                          |
|---------------|--------------------------------|-----------------------------------------------|
| ``503``       | HTTP 503, code 20503           | nothing recorded                              |
| ``20429``     | HTTP 429, code 20429           | nothing recorded                              |
| ``21211``, ``21610``, ``21614`` | HTTP 400, that code | nothing recorded                |
| ``30001``     | 201 queued                     | callback ``failed``, ErrorCode 30001          |
| ``undelivered``| 201 queued                    | ``sent``, then ``undelivered``, ErrorCode 30003|
| ``timeout``   | recorded, 201 after ``delay_s``| normal ``sent`` / ``delivered``               |

30001 (queue overflow) is a 30xxx *delivery* error: Twilio accepts the create and the message
fails later, reported by status callback (twilio.com/docs/errors/30001, /21611); so it is not
an HTTP error here. The synchronous "queue full" answer is 21611, not modelled.
"""

from __future__ import annotations

import logging
import signal
import threading
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from alerts.fakes.server import FakeServer, add_fail_route, command_line, hold
from alerts.fakes.twilio_state import (
    API,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    ERRORS,
    FINAL,
    MAX_BODY,
    SYNC_MODES,
    FailRule,
    FakeTwilio,
    Message,
)
from alerts.segments import segments

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FailRule",
    "FakeTwilioServer",
    "create_app",
    "main",
]

log = logging.getLogger(__name__)


def _error(code: int, **fmt: str) -> JSONResponse:
    status, message = ERRORS[code]
    body = {
        "code": code,
        "message": message.format(**fmt),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _parse_date(text: str) -> datetime:
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise ValueError(text)


def _int(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def create_app(
    account_sid: str = DEFAULT_ACCOUNT_SID,
    auth_token: str = DEFAULT_AUTH_TOKEN,
    step_s: float = 0.05,
) -> FastAPI:
    """The fake as an ASGI app; ``step_s`` is the pause before each status transition, s."""
    fake = FakeTwilio(account_sid, auth_token, step_s)
    app = FastAPI(title="fake-twilio", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.fake = fake
    messages_uri = API + "/Accounts/{account_sid}/Messages"

    @app.post(messages_uri + ".json")
    async def create_message(account_sid: str, request: Request) -> JSONResponse:
        if not fake.authorized(request, account_sid):
            return _error(20003)
        # parsed by hand: FastAPI's Form() would need python-multipart
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        to, from_, body = form.get("To", ""), form.get("From", ""), form.get("Body", "")
        if not to:
            return _error(21604)
        if not from_:
            return _error(21603)
        if not body:
            return _error(21602)
        if len(body) > MAX_BODY:
            return _error(21617)
        rule = fake.rules.take(to)
        mode = rule["mode"] if rule else None
        if mode in SYNC_MODES:
            return _error(SYNC_MODES[mode], to=to)
        message = Message(
            sid="SM" + uuid.uuid4().hex,
            to=to,
            from_=from_,
            body=body,
            num_segments=segments(body),
            date_created=datetime.now(UTC),
            status_callback=form.get("StatusCallback") or None,
        )
        fake.add(message)
        resource = message.resource(account_sid)  # rendered now: status "queued"
        final, error_code = FINAL.get(mode or "", ("delivered", None))
        fake.start_lifecycle(message.sid, final, error_code)
        await hold(rule)  # "timeout": accepted and recorded, but the answer comes too late for the client
        return JSONResponse(resource, status_code=201)

    @app.get(messages_uri + ".json")
    async def list_messages(account_sid: str, request: Request) -> JSONResponse:
        if not fake.authorized(request, account_sid):
            return _error(20003)
        query = request.query_params
        try:
            after = _parse_date(query["DateSent>"]) if "DateSent>" in query else None
            before = _parse_date(query["DateSent<"]) if "DateSent<" in query else None
        except ValueError:
            return _error(20001)
        page_size = min(max(_int(query.get("PageSize"), 50), 1), 1000)
        page = max(_int(query.get("Page"), 0), 0)
        with fake.lock:
            # a queued message has no date_sent yet: filter it by date_created
            selected = [
                m.resource(account_sid)
                for m in reversed(fake.messages)
                if query.get("To") in (None, m.to)
                and query.get("From") in (None, m.from_)
                and (after is None or (m.date_sent or m.date_created) >= after)
                and (before is None or (m.date_sent or m.date_created) <= before)
            ]
        start = page * page_size
        rows = selected[start : start + page_size]
        base = {k: v for k, v in query.items() if k not in ("Page", "PageSize", "PageToken")}

        def page_uri(n: int) -> str:
            uri = API + f"/Accounts/{account_sid}/Messages.json"
            return uri + "?" + urlencode({**base, "PageSize": page_size, "Page": n})

        more = start + page_size < len(selected)
        return JSONResponse(
            {
                "messages": rows,
                "end": start + len(rows) - 1 if rows else start,
                "first_page_uri": page_uri(0),
                "next_page_uri": page_uri(page + 1) if more else None,
                "previous_page_uri": page_uri(page - 1) if page > 0 else None,
                "page": page,
                "page_size": page_size,
                "start": start,
                "uri": page_uri(page),
            }
        )

    @app.get(messages_uri + "/{message_sid}.json")
    async def fetch_message(account_sid: str, message_sid: str, request: Request) -> JSONResponse:
        if not fake.authorized(request, account_sid):
            return _error(20003)
        with fake.lock:
            message = fake.by_sid.get(message_sid)
            resource = message.resource(account_sid) if message else None
        return JSONResponse(resource) if resource else _error(20404)

    add_fail_route(app, FailRule, fake.rules)

    @app.get("/_fake/messages")
    async def accepted_messages(since: int = 0) -> dict[str, Any]:
        with fake.lock:
            rows = [m.record() for m in fake.messages[max(since, 0) :]]
            return {"messages": rows, "next": len(fake.messages)}

    @app.get("/_fake/callbacks")
    async def callback_attempts(since: int = 0) -> dict[str, Any]:
        with fake.lock:
            return {"callbacks": fake.callbacks[max(since, 0) :], "next": len(fake.callbacks)}

    @app.post("/_fake/reset")
    async def reset() -> dict[str, bool]:
        fake.reset()
        return {"ok": True}

    return app


class FakeTwilioServer(FakeServer):
    """The fake served by uvicorn in a background thread; ``port=0`` picks a free port. ``url`` is
    the base URL to put into ``client.api.base_url``."""

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        step_s: float = 0.05,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        super().__init__(create_app(account_sid, auth_token, step_s), "fake-twilio", host, port)


def main(argv: list[str] | None = None) -> int:
    """``python -m alerts.fakes.twilio --host H --port N --account-sid AC.. --auth-token T``."""
    parser = command_line("alerts.fakes.twilio", __doc__)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    parser.add_argument("--step-s", type=float, default=0.05, help="pause per status step, s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    server = FakeTwilioServer(args.account_sid, args.auth_token, args.host, args.port, args.step_s)
    server.start()
    print(f"fake-twilio listening on {server.url}", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while server.running and not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
