"""Broker address parsing shared by every service.

``mqtt://host:port`` (also ``tcp://`` or a bare ``host:port``) is plain MQTT, port 1883 by default;
``mqtts://host:port`` is MQTT over TLS, port 8883 by default. Either may carry the account,
``mqtt://user:password@host:port``, percent-encoded.
"""

from __future__ import annotations

from urllib.parse import SplitResult, quote, unquote, urlsplit

__all__ = ["MQTT_SCHEMES", "mqtt_host_port", "mqtt_login", "mqtt_tls", "mqtt_url_as"]

#: URL scheme -> (TLS, default port).
MQTT_SCHEMES = {"mqtt": (False, 1883), "tcp": (False, 1883), "mqtts": (True, 8883)}


def _split(url: str) -> SplitResult:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in MQTT_SCHEMES:
        raise ValueError(f"unsupported MQTT URL scheme in {url!r} "
                         "(use mqtt://host:port, or mqtts://host:port for TLS)")
    return parts


def mqtt_tls(url: str) -> bool:
    """Whether ``url`` asks for TLS (``mqtts://``)."""
    return MQTT_SCHEMES[_split(url).scheme][0]


def mqtt_host_port(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` -> (host, port); port defaults to 1883, for ``mqtts://`` to 8883."""
    parts = _split(url)
    return parts.hostname or "127.0.0.1", parts.port or MQTT_SCHEMES[parts.scheme][1]


def mqtt_login(url: str) -> tuple[str, str | None] | None:
    """The account in ``mqtt://user:password@host:port`` (percent-decoded), or None."""
    parts = _split(url)
    if not parts.username:
        return None
    return unquote(parts.username), unquote(parts.password) if parts.password is not None else None


def mqtt_url_as(url: str, user: str, password: str) -> str:
    """``url`` with this account in it (percent-encoded), TLS or not as ``url`` says."""
    host, port = mqtt_host_port(url)
    scheme = "mqtts" if mqtt_tls(url) else "mqtt"
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
