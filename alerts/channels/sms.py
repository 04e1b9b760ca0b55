"""SMS channel over the Twilio Messages API, using the real ``twilio`` client.

``SmsChannel.send`` never raises for provider or network errors: it answers a ``SendResult``
whose ``outcome`` tells the retry stage what it may do (STANDARDS.md "Warning dissemination"):

| what happened                                              | outcome | the caller         |
|------------------------------------------------------------|---------|--------------------|
| 201 with a sid (status ``queued``)                         | sent    | awaits callbacks   |
| HTTP 429 / code 20429, code 30001, HTTP 503 (20503)        | retry   | backs off, resends |
| connection refused, DNS failure, connect timeout, TLS      | retry   | backs off, resends |
| 401 (20003, bad credentials)                               | retry   | backs off, resends |
| 21211 invalid number, 21610 unsubscribed, 21614 not mobile | failed  | never resends      |
| any other 4xx                                              |         |                    |
| read timeout, connection dropped after sending, HTTP       | unknown | ``find_sent``      |
| 500/502/504, a 2xx body that is not JSON                   |         | before resending   |

HTTP 500/502/504 are "unknown", not "retry": Twilio warns that a create answered with a 500 may
still have sent the message (twilio.com/docs/errors/20500), and a gateway error hides whether
the request got through. 503 (20503, "service unavailable") means it was not taken.
Bad credentials are retried: they stop every message, not this one, so the warnings wait in the
outbox (the channel alarm tells the operators, ``alerts.channel_alarm``) until someone fixes the
account, rather than being given up. Queue overflow (30001) is normally a delivery error that arrives by status callback, see
``delivery_outcome``.

Errors: ``SmsChannelError`` (raised by ``find_sent`` only, when the provider cannot be asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from urllib3.exceptions import NewConnectionError

__all__ = [
    "PERMANENT_CODES",
    "RETRYABLE_CODES",
    "DeliveryOutcome",
    "Outcome",
    "SendResult",
    "SmsChannel",
    "SmsChannelError",
    "delivery_outcome",
    "verify_signature",
]

Outcome = Literal["sent", "retry", "failed", "unknown"]
DeliveryOutcome = Literal["pending", "delivered", "retry", "failed"]

RETRYABLE_CODES = frozenset({20429, 20503, 30001})  # too many requests, unavailable, queue overflow
ACCOUNT_CODES = frozenset({20003})  # authentication failed: no message of this account goes out
PERMANENT_CODES = frozenset({21211, 21610, 21614})  # invalid, unsubscribed, not a mobile number

_PENDING = frozenset({"accepted", "scheduled", "queued", "sending", "sent"})
_DELIVERED = frozenset({"delivered", "read"})


class SmsChannelError(Exception):
    """The provider could not be asked (``find_sent``); the caller must not assume "not sent"."""


@dataclass(frozen=True)
class SendResult:
    """What one create call did. ``segments`` is Twilio's ``num_segments``."""

    outcome: Outcome
    sid: str | None = None
    status: str | None = None
    error_code: int | None = None
    error: str | None = None
    segments: int | None = None


def _from_http_error(status: int, code: int | None, message: str) -> SendResult:
    if code in RETRYABLE_CODES or code in ACCOUNT_CODES or status in (401, 429, 503):
        outcome: Outcome = "retry"
    elif code in PERMANENT_CODES or 400 <= status < 500:
        outcome = "failed"
    elif status >= 500:
        outcome = "unknown"  # a 500 on a create may have sent it (Twilio error 20500)
    else:
        outcome = "failed"  # e.g. a redirect: a configuration problem, resending will not help
    return SendResult(outcome, error_code=code, error=f"HTTP {status}: {message}")


def _never_connected(exc: BaseException) -> bool:
    """True when the error chain shows the TCP connection was never made."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, NewConnectionError):  # refused, unreachable, DNS (NameResolutionError)
            return True
        stack.extend([*item.args, getattr(item, "reason", None), item.__cause__, item.__context__])
    return False


def _from_transport_error(exc: requests.RequestException) -> SendResult:
    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
        return SendResult("retry", error=error)
    if isinstance(exc, requests.exceptions.ProxyError):
        return SendResult("retry", error=error)
    if isinstance(exc, requests.exceptions.Timeout):  # read timeout: it may have been sent
        return SendResult("unknown", error=error)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return SendResult("retry" if _never_connected(exc) else "unknown", error=error)
    if isinstance(
        exc,
        (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ),
    ):
        return SendResult("failed", error=error)
    return SendResult("unknown", error=error)


def _as_int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class SmsChannel:
    """Sends SMS through Twilio (or the fake in ``alerts.fakes.twilio`` when ``base_url`` is set).

    ``timeout_s`` bounds each HTTP request (connect and read), s.
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        http_client = TwilioHttpClient(timeout=timeout_s, max_retries=0)
        # The client must never resend a create by itself (after a timeout that can send twice):
        # only hazwatch's retry stage retries. max_retries=0 above covers https only.
        if http_client.session is not None:
            http_client.session.mount("http://", HTTPAdapter(max_retries=0))
        self._client = Client(account_sid, auth_token, http_client=http_client)
        if base_url is not None:
            self._client.api.base_url = base_url.rstrip("/")
            # TWILIO_EDGE / TWILIO_REGION from the environment would rewrite the fake's host
            self._client.edge = None
            self._client.region = None
        self.from_number = from_number

    @property
    def client(self) -> Client:
        """The underlying ``twilio.rest.Client`` (for tests and diagnostics)."""
        return self._client

    def send(self, to: str, body: str, status_callback: str | None = None) -> SendResult:
        """Create one message; see the module docstring for the outcomes."""
        try:
            if status_callback is None:
                message = self._client.messages.create(to=to, from_=self.from_number, body=body)
            else:
                message = self._client.messages.create(
                    to=to, from_=self.from_number, body=body, status_callback=status_callback
                )
        except TwilioRestException as exc:
            return _from_http_error(exc.status, _as_int(exc.code), exc.msg)
        except TwilioServiceException as exc:
            return _from_http_error(exc.status, _as_int(exc.code), exc.detail or exc.title)
        except requests.RequestException as exc:
            return _from_transport_error(exc)
        except (TwilioException, ValueError) as exc:  # a 2xx we cannot read: it may exist
            return SendResult("unknown", error=f"{type(exc).__name__}: {exc}")
        return SendResult(
            "sent",
            sid=message.sid,
            status=message.status,
            error_code=message.error_code,
            segments=_as_int(message.num_segments),
        )

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """The sid of a message to ``to`` with this ``body`` created at or after ``since``.

        For reconciling an "unknown" send. ``since`` (naive means UTC) should be taken before
        the first attempt, less any clock skew to the provider. Filters on ``date_created``
        rather than Twilio's ``DateSent>``: a message still queued has no ``date_sent``.
        Messages that ended ``failed`` or ``canceled`` never left Twilio and do not count.
        Raises ``SmsChannelError`` when the provider cannot be asked.
        """
        since_utc = since.replace(tzinfo=UTC) if since.tzinfo is None else since.astimezone(UTC)
        since_utc = since_utc.replace(microsecond=0)  # RFC 2822 dates have 1 s resolution
        try:
            for message in self._client.messages.stream(to=to, page_size=50):  # newest first
                created = message.date_created
                if created is not None and created < since_utc:
                    break
                if message.body == body and message.status not in ("failed", "canceled"):
                    sid: str | None = message.sid
                    return sid
        except (TwilioException, requests.RequestException, ValueError) as exc:
            raise SmsChannelError(f"cannot list messages to {to}: {exc}") from exc
        return None


def delivery_outcome(status: str, error_code: int | None = None) -> DeliveryOutcome:
    """Classify a status callback (``MessageStatus``, ``ErrorCode``) for the retry stage."""
    if status in _DELIVERED:
        return "delivered"
    if status in _PENDING:
        return "pending"
    if status in ("failed", "undelivered") and error_code in RETRYABLE_CODES:
        return "retry"
    return "failed"


def verify_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> bool:
    """True when ``signature`` (the ``X-Twilio-Signature`` header) signs ``url`` + ``params``.

    ``url`` is the full URL Twilio requested (as given in StatusCallback, query included);
    ``params`` the form fields of the POST.
    """
    if not signature:
        return False
    return bool(RequestValidator(auth_token).validate(url, params, signature))
