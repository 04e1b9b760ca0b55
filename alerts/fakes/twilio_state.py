"""The fake Twilio's state: its messages, failure rules and status callbacks, and each message's
lifecycle (queued -> sent -> delivered / undelivered / failed), each step a signed callback.
Served by :mod:`alerts.fakes.twilio`."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

import httpx
from fastapi import Request
from twilio.request_validator import RequestValidator

from alerts.fakes.server import FailRuleBase, FailRules

__all__ = ["API", "DEFAULT_ACCOUNT_SID", "DEFAULT_AUTH_TOKEN", "ERRORS", "ERROR_MESSAGES", "FINAL", "MAX_BODY",
           "SYNC_MODES", "FailRule", "FakeTwilio", "Message"]

log = logging.getLogger("alerts.fakes.twilio")

DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
API = "/2010-04-01"
MAX_BODY = 1600  # Twilio's limit on a concatenated body, characters

# code -> (HTTP status, Twilio's message)
ERRORS: dict[int, tuple[int, str]] = {
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
SYNC_MODES = {"503": 20503, "20429": 20429, "21211": 21211, "21610": 21610, "21614": 21614}
# mode -> (final status, error code) of the accepted message
FINAL = {"30001": ("failed", 30001), "undelivered": ("undelivered", 30003)}
ERROR_MESSAGES = {30001: "Queue overflow", 30003: "Unreachable destination handset"}

FailMode = Literal["503", "20429", "30001", "21211", "21610", "21614", "timeout", "undelivered"]


class FailRule(FailRuleBase):
    mode: FailMode


def _rfc2822(t: datetime | None) -> str | None:
    return None if t is None else format_datetime(t, usegmt=True)


_NOT_RECORDED = ("from_", "date_sent", "date_updated")  # fields left out of /_fake/messages


@dataclass
class Message:
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
            "error_message": ERROR_MESSAGES.get(self.error_code or 0),
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


class FakeTwilio:
    """Thread-safe in-memory state plus the message lifecycle."""

    def __init__(self, account_sid: str, auth_token: str, step_s: float) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.step_s = step_s  # pause before each status transition, s
        self.lock = threading.Lock()
        self.messages: list[Message] = []
        self.by_sid: dict[str, Message] = {}
        self.rules = FailRules()
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

    def add(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)
            self.by_sid[message.sid] = message

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.by_sid.clear()
            self.callbacks.clear()
        self.rules.clear()

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

