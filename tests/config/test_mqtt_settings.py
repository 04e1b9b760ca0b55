"""MQTT settings (TLS, the account) and the environment's secret files (``<VARIABLE>_FILE``).

The TLS connections themselves are tested against a real Mosquitto in tests/deploy/test_mqtt_tls.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from config.loader import ENV_OVERRIDES, ConfigError, load_config
from config.mqtt import MqttSettings, configure_client
from config.urls import mqtt_host_port, mqtt_login, mqtt_tls, mqtt_url_as
from hazwatch.cli import app
from tests.config.fixtures import EXAMPLE


def _issues(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env=env)
    return [str(i) for i in info.value.issues]


# -- URLs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "tls", "address"), [
    ("mqtt://broker", False, ("broker", 1883)),
    ("broker:1884", False, ("broker", 1884)),
    ("tcp://broker", False, ("broker", 1883)),
    ("mqtts://broker", True, ("broker", 8883)),
    ("mqtts://u:p@broker:9883", True, ("broker", 9883)),
])
def test_urls_say_whether_tls_and_where(url: str, tls: bool, address: tuple[str, int]) -> None:
    assert mqtt_tls(url) is tls
    assert mqtt_host_port(url) == address


def test_an_account_put_in_a_tls_url_keeps_tls() -> None:
    url = mqtt_url_as("mqtts://broker", "hazwatch-ingest", "p@ss/word")
    assert url == "mqtts://hazwatch-ingest:p%40ss%2Fword@broker:8883"
    assert mqtt_login(url) == ("hazwatch-ingest", "p@ss/word")
    assert mqtt_url_as("mqtt://broker:1884", "a", "b") == "mqtt://a:b@broker:1884"


# -- the settings --------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "message"), [
    ({"url": "http://broker"}, "unsupported MQTT URL scheme"),
    ({"url": "mqtt://a:b@broker", "username": "c"}, "the account is given twice"),
    ({"password": "secret"}, "password without username"),
    ({"ca_file": "/etc/ca.crt"}, "ca_file set, but the URL is not mqtts://"),
    ({"url": "mqtts://broker", "key_file": "/k.pem"}, "key_file without cert_file"),
])
def test_inconsistent_settings_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MqttSettings(**fields)


class Recorder(mqtt.Client):
    """A paho client that records what is set on it instead of loading certificates."""

    def __init__(self) -> None:
        super().__init__(mqtt.CallbackAPIVersion.VERSION2)
        self.account: tuple[str, str | None] | None = None
        self.tls: dict[str, Any] | None = None

    def username_pw_set(self, username: str | None, password: str | None = None) -> None:
        self.account = (str(username), password)

    def tls_set(self, **kwargs: Any) -> None:  # type: ignore[override]
        self.tls = kwargs


def test_the_account_comes_from_the_device_else_the_url_else_the_settings() -> None:
    settings = MqttSettings(url="mqtts://broker", username="hazwatch-alerts", password="pw",
                            ca_file="/certs/ca.crt", cert_file="/certs/c.pem", key_file="/certs/k.pem")
    client = Recorder()
    assert configure_client(client, settings) == ("broker", 8883)
    assert client.account == ("hazwatch-alerts", "pw")
    assert client.tls is not None
    assert (client.tls["ca_certs"], client.tls["certfile"], client.tls["keyfile"]) == (
        "/certs/ca.crt", "/certs/c.pem", "/certs/k.pem")
    client = Recorder()
    configure_client(client, settings, login=("CH-001", "device-pw"))
    assert client.account == ("CH-001", "device-pw")
    client = Recorder()
    assert configure_client(client, "mqtt://ingest:pw@broker:1884") == ("broker", 1884)
    assert (client.account, client.tls) == (("ingest", "pw"), None)  # plain: no TLS
    client = Recorder()
    configure_client(client, "mqtt://broker")
    assert client.account is None


def test_a_tls_file_that_cannot_be_loaded_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "ca.crt")
    with pytest.raises(ValueError, match=f"'ca_file': '{missing}'.* cannot be loaded"):
        configure_client(mqtt.Client(mqtt.CallbackAPIVersion.VERSION2), MqttSettings(url="mqtts://b", ca_file=missing))


# -- the environment -----------------------------------------------------------------------------
def test_mqtt_tls_account_and_alerts_host_have_variables() -> None:
    settings = load_config(EXAMPLE, env={
        "HAZWATCH_MQTT_URL": "mqtts://mosquitto:8883",
        "HAZWATCH_MQTT_USERNAME": "hazwatch-ingest",
        "HAZWATCH_MQTT_PASSWORD": "s3cret",
        "HAZWATCH_MQTT_CA_FILE": "/certs/ca.crt",
        "HAZWATCH_MQTT_CERT_FILE": "/certs/client.crt",
        "HAZWATCH_MQTT_KEY_FILE": "/certs/client.key",
        "HAZWATCH_ALERTS_HTTP_HOST": "0.0.0.0",
    }).settings
    assert settings.mqtt.login() == ("hazwatch-ingest", "s3cret")
    assert "s3cret" not in repr(settings.mqtt)
    assert (settings.mqtt.tls, settings.mqtt.ca_file, settings.mqtt.cert_file, settings.mqtt.key_file) == (
        True, "/certs/ca.crt", "/certs/client.crt", "/certs/client.key")
    assert settings.notify.http.host == "0.0.0.0"


#: A valid value for every variable of ENV_OVERRIDES.
VALUES = {
    "HAZWATCH_MQTT_URL": "mqtts://broker:8883",
    "HAZWATCH_MQTT_USERNAME": "hazwatch-alerts",
    "HAZWATCH_MQTT_PASSWORD": "mqtt pw",
    "HAZWATCH_MQTT_CA_FILE": "/certs/ca.crt",
    "HAZWATCH_MQTT_CERT_FILE": "/certs/client.crt",
    "HAZWATCH_MQTT_KEY_FILE": "/certs/client.key",
    "HAZWATCH_KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092",
    "HAZWATCH_KAFKA_REPLICATION_FACTOR": "3",
    "HAZWATCH_KAFKA_MIN_INSYNC_REPLICAS": "2",
    "HAZWATCH_KAFKA_IDEMPOTENCE": "False",
    "HAZWATCH_DATABASE_URL": "postgresql+psycopg2://hazwatch:pw@db/hazwatch",
    "HAZWATCH_TWILIO_BASE_URL": "http://127.0.0.1:8081",
    "TWILIO_ACCOUNT_SID": "AC11111111111111111111111111111111",
    "TWILIO_AUTH_TOKEN": "tw-token-from-a-file",
    "HAZWATCH_ALERTS_HTTP_HOST": "0.0.0.0",
    "HAZWATCH_ALERTS_HTTP_PORT": "8091",
    "HAZWATCH_ALERTS_PUBLIC_URL": "https://alerts.example.gov.cn",
    "HAZWATCH_HISTORY_URL": "http://influxdb:8086",
    "HAZWATCH_HISTORY_TOKEN": "influx-token",
    "HAZWATCH_HISTORY_STORE": "victoriametrics",
}


def test_every_variable_can_come_from_a_secret_file(tmp_path: Path) -> None:
    assert set(VALUES) == set(ENV_OVERRIDES), "give the new variable a value here"
    env = {}
    for var, value in VALUES.items():
        (tmp_path / var).write_text(f"  {value}\n")  # surrounding white space is stripped
        env[f"{var}_FILE"] = str(tmp_path / var)
    settings = load_config(EXAMPLE, env=env).settings
    for var, path in ENV_OVERRIDES.items():
        value: Any = settings
        for part in path:
            value = getattr(value, part)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        assert str(value) == VALUES[var], var


def test_a_secret_file_that_cannot_be_read_names_the_variable_the_file_and_why(tmp_path: Path) -> None:
    missing, empty, both = tmp_path / "missing", tmp_path / "empty", tmp_path / "token"
    empty.write_text("\n")
    both.write_text("x")
    issues = _issues({"HAZWATCH_MQTT_PASSWORD_FILE": str(missing),
                      "HAZWATCH_HISTORY_TOKEN_FILE": str(empty),
                      "TWILIO_AUTH_TOKEN_FILE": str(both), "TWILIO_AUTH_TOKEN": "y"})
    assert sorted(issues) == sorted([
        f"{missing}: HAZWATCH_MQTT_PASSWORD_FILE: cannot read the file: No such file or directory",
        f"{empty}: HAZWATCH_HISTORY_TOKEN_FILE: the file is empty",
        f"{both}: TWILIO_AUTH_TOKEN_FILE: TWILIO_AUTH_TOKEN is set too: set one of them",
    ])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_secret_file_is_an_error(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    secret.chmod(0)
    assert _issues({"TWILIO_AUTH_TOKEN_FILE": str(secret)}) == [
        f"{secret}: TWILIO_AUTH_TOKEN_FILE: cannot read the file: Permission denied"]


def test_check_config_reports_a_missing_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(f"{var}_FILE", raising=False)
    monkeypatch.setenv("HAZWATCH_MQTT_PASSWORD_FILE", str(tmp_path / "mqtt_password"))
    result = CliRunner().invoke(app, ["check-config", str(EXAMPLE)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{tmp_path / 'mqtt_password'}: HAZWATCH_MQTT_PASSWORD_FILE: cannot read the file: No such file or directory",
        "1 error(s)"]
