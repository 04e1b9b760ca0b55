"""A local fake of the Twilio Messages API (2010-04-01), for tests and the demo.

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

import argparse
import asyncio
import base64
import binascii
import logging
import secrets
import signal
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from twilio.request_validator import RequestValidator

from alerts.fakes.server import FakeServer
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

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
API = "/2010-04-01"
MAX_BODY = 1600  # Twilio's limit on a concatenated body, characters

# code -> (HTTP status, Twilio's message)
_ERRORS: dict[int, tuple[int, str]] = {
    20001: (400, "Invalid parameter"),
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20503: (503, "Service unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21614: (400, "'To' number {to} is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
_SYNC_MODES = {"503": 20503, "20429": 20429, "21211": 21211, "21610": 21610, "21614": 21614}
# mode -> (final status, error code) of the accepted message
_FINAL = {"30001": ("failed", 30001), "undelivered": ("undelivered", 30003)}
_ERROR_MESSAGES = {30001: "Queue overflow", 30003: "Unreachable destination handset"}

FailMode = Literal["503", "20429", "30001", "21211", "21610", "21614", "timeout", "undelivered"]


class FailRule(BaseModel):
    """Body of ``POST /_fake/fail``."""

    model_config = ConfigDict(extra="forbid")
    mode: FailMode
    count: int = Field(default=1, ge=1)
    to: str | None = None
    delay_s: float = Field(default=5.0, ge=0)  # "timeout" only: how long the answer is held


def _error(code: int, **fmt: str) -> JSONResponse:
    status, message = _ERRORS[code]
    body = {
        "code": code,
        "message": message.format(**fmt),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _rfc2822(t: datetime | None) -> str | None:
    return None if t is None else format_datetime(t, usegmt=True)


_NOT_RECORDED = ("from_", "date_sent", "date_updated")  # fields left out of /_fake/messages


@dataclass
class _Message:
    sid: str
    to: str
    from_: str
    body: str
    num_segments: int
    date_created: datetime
    status_callback: str | None
    status: str = "queued"
    date_sent: datetime | None = None
    date_updated: datetime | None = None
    error_code: int | None = None

    def resource(self, account_sid: str) -> dict[str, Any]:
        """The Message resource as Twilio renders it (num_segments and num_media are strings)."""
        uri = f"{API}/Accounts/{account_sid}/Messages/{self.sid}"
        return {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": _rfc2822(self.date_created),
            "date_sent": _rfc2822(self.date_sent),
            "date_updated": _rfc2822(self.date_updated or self.date_created),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": _ERROR_MESSAGES.get(self.error_code or 0),
            "from": self.from_,
            "messaging_service_sid": None,
            "num_media": "0",
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }

    def record(self) -> dict[str, Any]:
        """The flat view of ``/_fake/messages``."""
        row = {k: v for k, v in vars(self).items() if k not in _NOT_RECORDED}
        return {**row, "from": self.from_, "date_created": _rfc2822(self.date_created)}


class _FakeTwilio:
    """Thread-safe in-memory state plus the message lifecycle."""

    def __init__(self, account_sid: str, auth_token: str, step_s: float) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.step_s = step_s  # pause before each status transition, s
        self.lock = threading.Lock()
        self.messages: list[_Message] = []
        self.by_sid: dict[str, _Message] = {}
        self.rules: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.tasks: set[asyncio.Task[None]] = set()  # strong refs, or the loop may drop them
        self._client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient] | None = None  # the callbacks' client

    def authorized(self, request: Request, account_sid: str) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or account_sid != self.account_sid:
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(user, self.account_sid.encode()) and secrets.compare_digest(
            password, self.auth_token.encode()
        )

    def take_rule(self, to: str) -> dict[str, Any] | None:
        with self.lock:
            for rule in self.rules:
                if rule["to"] in (None, to):
                    rule["count"] -= 1
                    if rule["count"] == 0:
                        self.rules.remove(rule)
                    return rule
        return None

    def add(self, message: _Message) -> None:
        with self.lock:
            self.messages.append(message)
            self.by_sid[message.sid] = message

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.by_sid.clear()
            self.rules.clear()
            self.callbacks.clear()

    def start_lifecycle(self, sid: str, final: str, error_code: int | None) -> None:
        task = asyncio.get_running_loop().create_task(self._lifecycle(sid, final, error_code))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _lifecycle(self, sid: str, final: str, error_code: int | None) -> None:
        try:
            if final != "failed":  # a failed message never left Twilio
                await asyncio.sleep(self.step_s)
                await self._advance(sid, "sent", None)
            await asyncio.sleep(self.step_s)
            await self._advance(sid, final, error_code)
        except Exception:  # a callback problem must never take the server down
            log.exception("fake-twilio: lifecycle of %s failed", sid)

    async def _advance(self, sid: str, status: str, error_code: int | None) -> None:
        now = datetime.now(UTC)
        with self.lock:
            message = self.by_sid.get(sid)
            if message is None:  # reset meanwhile
                return
            message.status, message.date_updated = status, now
            message.error_code = error_code
            if status == "sent":
                message.date_sent = now
            params = {
                "MessageSid": sid,
                "SmsSid": sid,
                "AccountSid": self.account_sid,
                "From": message.from_,
                "To": message.to,
                "MessageStatus": status,
                "SmsStatus": status,
                "ApiVersion": "2010-04-01",
            }
            url = message.status_callback
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
        if url:
            await self._post_callback(url, params)

    async def _post_callback(self, url: str, params: dict[str, str]) -> None:
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        entry: dict[str, Any] = {"sid": params["MessageSid"], "status": params["MessageStatus"]}
        entry.update(url=url, http_status=None, error=None)
        loop = asyncio.get_running_loop()
        if self._client is None or self._client[0] is not loop:
            # trust_env=False: a proxy from the environment must not swallow local callbacks. One
            # client for every callback (of this loop): a new one builds an SSL context, about 20 ms
            # of CPU, and the pipeline benchmark saw the fake take a fifth of a core for two a SMS
            self._client = (loop, httpx.AsyncClient(timeout=5.0, trust_env=False))
        try:
            response = await self._client[1].post(
                url,
                data=params,
                headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
            )
            entry["http_status"] = response.status_code
        except Exception as exc:  # noqa: BLE001 - whatever the receiver does, record it, go on
            entry["error"] = repr(exc)
            log.warning("fake-twilio: status callback to %s failed: %r", url, exc)
        with self.lock:
            self.callbacks.append(entry)


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
    fake = _FakeTwilio(account_sid, auth_token, step_s)
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
        rule = fake.take_rule(to)
        mode = rule["mode"] if rule else None
        if mode in _SYNC_MODES:
            return _error(_SYNC_MODES[mode], to=to)
        message = _Message(
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
        final, error_code = _FINAL.get(mode or "", ("delivered", None))
        fake.start_lifecycle(message.sid, final, error_code)
        if rule is not None and mode == "timeout":
            # accepted and recorded, but the answer comes too late for the client
            await asyncio.sleep(rule["delay_s"])
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

    @app.post("/_fake/fail")
    async def add_fail_rule(rule: FailRule) -> dict[str, Any]:
        with fake.lock:
            fake.rules.append(rule.model_dump())
            return {"ok": True, "rules": len(fake.rules)}

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
    """``python -m alerts.fake_twilio --host H --port N --account-sid AC.. --auth-token T``."""
    parser = argparse.ArgumentParser(prog="python -m alerts.fake_twilio", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
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
