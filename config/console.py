"""Settings of the operator console (``console:`` in ``hazwatch.yaml``; docs/CONSOLE.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from config.models_base import _Model

__all__ = ["ConsoleSettings"]

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class ConsoleSettings(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    secure_cookies: bool | None = None
    """``Secure`` flag on the session and CSRF cookies. None (default): on, unless the console
    listens on a loopback address only (plain HTTP on 127.0.0.1, where browsers would drop them)."""
    session_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 12.0
    login_max_failures: Annotated[int, Field(ge=1)] = 5
    login_window_s: Annotated[float, Field(gt=0)] = 300.0
    """Failed log-ins per user name or client address within this window before 429."""
    history_hours: Annotated[float, Field(gt=0, le=24 * 7)] = 24.0
    """How far back the live reader seeks at start and keeps trend data (hours)."""
    episode_poll_s: Annotated[float, Field(gt=0, le=60)] = 0.5
    trusted_proxies: list[str] = []
    """Addresses of reverse proxies whose ``X-Forwarded-For`` names the client (uvicorn
    ``forwarded_allow_ips``). Empty (default): the peer address is the client."""

    def cookies_secure(self) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.host not in _LOOPBACK
