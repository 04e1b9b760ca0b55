"""Who is asking: sessions from the ``hw_session`` cookie, CSRF checks, roles, enterprise scoping,
and the log-in rate limit (docs/CONSOLE.md "Sessions, CSRF, rate limiting").

For the pages (``console/pages.py``)::

    user = optional_user(request)          # None when not logged in
    user = await current_user(request)     # or HTTP 401
    visible_site_ids(user, config)         # the sites this user may see

:class:`LoginLimiter` is pure (it takes ``now``); the rest reads the app's
:class:`~console.app.ConsoleContext` from ``request.app.state.console``.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from config.models import Config

if TYPE_CHECKING:
    from console.app import ConsoleContext

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "LANG_COOKIE",
    "SESSION_COOKIE",
    "LoginLimiter",
    "User",
    "api_user",
    "can_see_site",
    "check_csrf",
    "context",
    "current_user",
    "optional_user",
    "request_language",
    "require_role",
    "secure_cookies",
    "visible_site_ids",
]

SESSION_COOKIE = "hw_session"
CSRF_COOKIE = "hw_csrf"
LANG_COOKIE = "hw_lang"
CSRF_HEADER = "X-CSRF-Token"
LANGUAGES = ("zh-CN", "en")
VERIFY_SLOTS = 4
"""Password checks (argon2id, 64 MiB each) that may run at once."""


@dataclass(frozen=True)
class User:
    """The logged-in user of a request. ``language``: of this request (``?lang``, cookie
    ``hw_lang``, else the user's own setting); ``csrf``: the session's CSRF token."""

    username: str
    role: str
    """operator | officer | admin"""
    enterprise: str | None
    language: str
    csrf: str

    @property
    def sees_all(self) -> bool:
        return self.role != "officer"


def context(request: Request) -> ConsoleContext:
    return request.app.state.console  # type: ignore[no-any-return]


def request_language(request: Request, default: str = "zh-CN") -> str:
    """``?lang=``, else the ``hw_lang`` cookie, else ``default``."""
    for lang in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if lang in LANGUAGES:
            return lang  # type: ignore[return-value]
    return default if default in LANGUAGES else "zh-CN"


def optional_user(request: Request) -> User | None:
    """The user of the request's session cookie, or None. Looked up once per request."""
    if hasattr(request.state, "hw_user"):
        return request.state.hw_user  # type: ignore[no-any-return]
    user = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        ctx = context(request)
        info = ctx.users.session(token, ctx.now())
        if info is not None:
            user = User(info.username, info.role, info.enterprise,
                        request_language(request, info.language), info.csrf)
    request.state.hw_user = user
    return user


def _unauthorized(request: Request) -> HTTPException:
    zh = request_language(request) == "zh-CN"
    return HTTPException(401, "未登录或会话已过期" if zh else "not logged in, or the session expired")


async def current_user(request: Request) -> User:
    """The logged-in user; HTTP 401 otherwise."""
    user = optional_user(request)
    if user is None:
        raise _unauthorized(request)
    return user


def api_user(request: Request) -> User:
    """The same as :func:`current_user`, as a plain dependency for the (threaded) API routes."""
    user = optional_user(request)
    if user is None:
        raise _unauthorized(request)
    return user


def require_role(user: User, *roles: str) -> None:
    if user.role not in roles:
        zh = user.language == "zh-CN"
        raise HTTPException(403, "无此权限" if zh else f"only {' or '.join(roles)} may do this")


def check_csrf(request: Request, expected: str | None) -> bool:
    """True when the ``X-CSRF-Token`` header equals ``expected`` (constant time)."""
    sent = request.headers.get(CSRF_HEADER, "")
    return bool(expected) and bool(sent) and hmac.compare_digest(sent, expected or "")


def visible_site_ids(user: User, config: Config) -> set[str]:
    """Every site for operators and admins; an officer's enterprise's sites for an officer."""
    if user.sees_all:
        return {s.id for s in config.sites}
    return {s.id for s in config.sites if s.enterprise == user.enterprise}


def can_see_site(user: User, config: Config, site_id: str) -> bool:
    if user.sees_all:
        return True
    try:
        return config.site(site_id).enterprise == user.enterprise
    except KeyError:
        return False


@dataclass
class LoginLimiter:
    """At most ``max_failures`` failed log-ins per key (user name, client address) in ``window_s``.

    Pure: every method takes ``now`` (seconds, any monotonic-enough clock)."""

    max_failures: int = 5
    window_s: float = 300.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def retry_after(self, keys: Iterable[str], now: float) -> float | None:
        """Seconds until a blocked key may try again; None when no key is blocked."""
        waits = [q[0] + self.window_s - now for k in keys
                 if len(q := self._recent(k, now)) >= self.max_failures]
        return max(waits) if waits else None

    def attempt(self, keys: Iterable[str], now: float) -> float | None:
        """Check and record in one step (call under one lock): seconds to wait when a key is
        blocked; else None, and a provisional failure at ``now`` is recorded for every key, so
        concurrent attempts cannot all pass the check before any of them failed. A successful
        log-in takes it back (:meth:`release`)."""
        keys = list(keys)
        wait = self.retry_after(keys, now)
        if wait is None:
            self.failed(keys, now)
        return wait

    def failed(self, keys: Iterable[str], now: float) -> None:
        for k in keys:
            self._failures.setdefault(k, deque()).append(now)
            q = self._failures[k]
            while len(q) > self.max_failures:  # only the newest matter
                q.popleft()

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)

    def release(self, keys: Iterable[str], now: float) -> None:
        """Take back the provisional failure that :meth:`attempt` recorded at ``now``."""
        for k in keys:
            q = self._failures.get(k)
            if q is None:
                continue
            try:
                q.remove(now)
            except ValueError:
                pass
            if not q:
                del self._failures[k]


def secure_cookies(request: Request) -> bool:
    """Whether cookies get the ``Secure`` flag (setting ``console.secure_cookies``; by default
    on unless the console listens on a loopback address over plain HTTP)."""
    return context(request).settings.cookies_secure() or request.url.scheme == "https"
