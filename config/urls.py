"""Broker address parsing shared by every service."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

__all__ = ["mqtt_host_port", "mqtt_login", "mqtt_url_as"]


def _split(url: str):  # noqa: ANN202 - urllib's SplitResult
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"unsupported MQTT URL scheme in {url!r} (use mqtt://host:port)")
    return parts


def mqtt_host_port(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` -> (host, port); port defaults to 1883."""
    parts = _split(url)
    return parts.hostname or "127.0.0.1", parts.port or 1883


def mqtt_login(url: str) -> tuple[str, str | None] | None:
    """The account in ``mqtt://user:password@host:port`` (percent-decoded), or None."""
    parts = _split(url)
    if not parts.username:
        return None
    return unquote(parts.username), unquote(parts.password) if parts.password is not None else None


def mqtt_url_as(url: str, user: str, password: str) -> str:
    """``url`` with this account in it (percent-encoded)."""
    host, port = mqtt_host_port(url)
    return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
