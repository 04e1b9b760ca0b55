"""Broker address parsing shared by every service."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["mqtt_host_port"]


def mqtt_host_port(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` -> (host, port); port defaults to 1883."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"unsupported MQTT URL scheme in {url!r} (use mqtt://host:port)")
    return parts.hostname or "127.0.0.1", parts.port or 1883
