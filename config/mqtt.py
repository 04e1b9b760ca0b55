"""MQTT settings (``mqtt`` in hazwatch.yaml) and the one place that applies them to a paho client.

Every hazwatch MQTT client -- ingest, the alerts service's CAP publisher, the simulator's devices --
logs in and sets up TLS through :func:`configure_client`, so that an account or a certificate is
handled the same way everywhere:

- the account: a device's own (the simulator's per-site passwords), else the one in the URL
  (``mqtt://user:password@host``), else ``username``/``password`` (``HAZWATCH_MQTT_USERNAME`` and
  ``HAZWATCH_MQTT_PASSWORD``, or ``HAZWATCH_MQTT_PASSWORD_FILE`` for a Docker secret);
- TLS for an ``mqtts://`` URL: the broker's certificate is checked against ``ca_file`` (else the
  system's CA store) and must name the host dialled; ``cert_file``/``key_file`` add a client
  certificate for a broker that asks for one.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from pydantic import SecretStr, field_validator, model_validator

from config.models_base import _Model
from config.urls import mqtt_host_port, mqtt_login, mqtt_tls

if TYPE_CHECKING:
    import paho.mqtt.client as mqtt

__all__ = ["MqttSettings", "configure_client", "mqtt_settings"]


class MqttSettings(_Model):
    url: str = "mqtt://127.0.0.1:1883"
    """``mqtt://host:port`` (plain, port 1883 by default) or ``mqtts://host:port`` (TLS, 8883); it
    may carry the account, ``mqtt://user:password@host:port``, percent-encoded."""
    username: str | None = None
    """The account, when the URL carries none (``HAZWATCH_MQTT_USERNAME``)."""
    password: SecretStr | None = None
    """Its password (``HAZWATCH_MQTT_PASSWORD``, or ``HAZWATCH_MQTT_PASSWORD_FILE``)."""
    ca_file: str | None = None
    """mqtts: the CA certificate(s), PEM, that the broker's certificate must chain to; None: the
    system's CA store."""
    cert_file: str | None = None
    """mqtts: a client certificate, PEM, for a broker that asks for one (with ``key_file``, unless
    the key is in the same file)."""
    key_file: str | None = None
    """mqtts: the client certificate's private key, PEM, unencrypted."""

    @field_validator("url")
    @classmethod
    def _parses(cls, url: str) -> str:
        mqtt_host_port(url)  # raises ValueError naming the scheme
        return url

    @model_validator(mode="after")
    def _consistent(self) -> MqttSettings:
        if self.username is not None and mqtt_login(self.url):
            raise ValueError("the account is given twice: in the URL and as username; keep one")
        if self.password is not None and self.username is None:
            raise ValueError("password without username")
        files = {k: v for k, v in (("ca_file", self.ca_file), ("cert_file", self.cert_file),
                                   ("key_file", self.key_file)) if v}
        if files and not self.tls:
            raise ValueError(f"{', '.join(files)} set, but the URL is not mqtts://: TLS would not be used")
        if self.key_file and not self.cert_file:
            raise ValueError("key_file without cert_file")
        return self

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS (``mqtts://``)."""
        return mqtt_tls(self.url)

    def login(self) -> tuple[str, str | None] | None:
        """The account to log in with: the URL's, else ``username``/``password``, else None."""
        if account := mqtt_login(self.url):
            return account
        if self.username is None:
            return None
        return self.username, self.password.get_secret_value() if self.password is not None else None


def mqtt_settings(mqtt: MqttSettings | str) -> MqttSettings:
    """``mqtt`` as settings: a bare URL is plain settings with that URL."""
    return mqtt if isinstance(mqtt, MqttSettings) else MqttSettings(url=mqtt)


def configure_client(client: mqtt.Client, mqtt: MqttSettings | str, *,
                     login: tuple[str, str | None] | None = None) -> tuple[str, int]:
    """Set ``client``'s account and TLS as ``mqtt`` says; return the (host, port) to connect to.

    ``login`` (a device's own account) wins over the settings' account. Raise ValueError when the
    URL does not parse or a TLS file cannot be loaded (naming the files)."""
    settings = mqtt_settings(mqtt)
    account = login or settings.login()
    if account is not None:
        client.username_pw_set(*account)
    if settings.tls:
        try:
            client.tls_set(ca_certs=settings.ca_file, certfile=settings.cert_file,
                           keyfile=settings.key_file, cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError) as exc:  # a missing or unreadable file, a bad PEM
            named = {k: v for k, v in (("ca_file", settings.ca_file), ("cert_file", settings.cert_file),
                                       ("key_file", settings.key_file)) if v}
            raise ValueError(f"MQTT TLS files {named or '(system CA store)'} cannot be loaded: {exc}") from exc
    return mqtt_host_port(settings.url)
