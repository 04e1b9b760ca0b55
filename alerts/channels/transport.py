"""Network failures -> outcomes: was the request possibly read by the provider? For the cloud SDKs
(both speak HTTP through ``requests``) and the robots' webhooks (``httpx``):

- the connection was never made (refused, unreachable, DNS, connect timeout, TLS handshake,
  proxy): nothing can have arrived -> ``retry``;
- a read timeout or a connection dropped after sending: it may have arrived -> ``unknown``.

The SDKs wrap the ``requests`` exception in their own (Aliyun's ``RetryError`` in an
``UnretryableException``, Tencent's ``TencentCloudSDKException("ClientNetworkError")``) and keep it
only as ``__context__``; :func:`transport_outcome` walks the chain to find it.
"""

from __future__ import annotations

import requests
from urllib3.exceptions import NewConnectionError

from alerts.channels.base import Outcome

__all__ = ["http_status_outcome", "httpx_outcome", "transport_outcome"]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: set[int] = set()
    out: list[BaseException] = []
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        out.append(item)
        stack.extend([*item.args, getattr(item, "reason", None), getattr(item, "inner_exception", None),
                      item.__cause__, item.__context__])
    return out


def transport_outcome(exc: BaseException) -> Outcome | None:
    """The outcome of a network failure somewhere in ``exc``'s chain; None if there is none."""
    chain = _chain(exc)
    error = f"{type(exc).__name__}: {exc}"
    if any(isinstance(e, NewConnectionError) for e in chain):  # refused, unreachable, DNS
        return Outcome("retry", error=error)
    for e in chain:
        if isinstance(e, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError,
                          requests.exceptions.ProxyError)):
            return Outcome("retry", error=error)
    for e in chain:
        if isinstance(e, (requests.exceptions.Timeout, requests.exceptions.ConnectionError)):
            return Outcome("unknown", error=error)  # read timeout or dropped: it may have arrived
    return None


def http_status_outcome(status: int, error: str, code: str | None = None) -> Outcome:
    """An HTTP error status without a provider code we know: 429 and 503 were not taken (retry),
    another 5xx may have been (unknown), another 4xx is a request that will never pass (failed)."""
    if status in (429, 503):
        return Outcome("retry", error_code=code, error=error)
    if status >= 500:
        return Outcome("unknown", error_code=code, error=error)
    return Outcome("failed", error_code=code, error=error)


def httpx_outcome(exc: BaseException) -> Outcome:
    """The same for ``httpx`` (the robots' webhooks): never connected -> retry, else unknown."""
    import httpx

    error = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError, httpx.UnsupportedProtocol)):
        return Outcome("retry", error=error)
    if isinstance(exc, httpx.InvalidURL):
        return Outcome("failed", error=error)
    return Outcome("unknown", error=error)  # read/write timeout, dropped, protocol error
