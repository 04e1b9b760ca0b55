"""MQTT over TLS against a real Mosquitto run with deploy/mosquitto's configuration (its TLS
listener, password file and ACL), with certificates made by the openssl commands of
deploy/mosquitto/certs/README.md: the simulator's devices and the alerts service's CAP publisher
publish over mqtts://, ingest's client receives over it, and a client without the CA is refused."""

from __future__ import annotations

import re
import ssl
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from config.mqtt import MqttSettings
from hazwatch.runtime import wait_for
from tests.deploy.compose import MOSQUITTO_DIR
from tests.deploy.mosquitto import (
    Account,
    Broker,
    deployed_mosquitto,
    make_passwd,
    require_mosquitto,
)

ACCOUNTS = ("hazwatch-ingest", "hazwatch-alerts", "CH-001", "loudspeaker")
README = MOSQUITTO_DIR / "certs" / "README.md"


def make_certificates(folder: Path) -> Path:
    """Run the README's openssl commands in ``folder`` for a broker at 127.0.0.1 / localhost."""
    (block,) = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    script = "\n".join(line for line in block.replace("\\\n", " ").splitlines()
                       if not line.startswith(("cd ", "sudo ")))
    script = script.replace("mqtt.example.gov.cn", "localhost").replace("203.0.113.10", "127.0.0.1")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert {"ca.crt", "server.crt", "server.key"} <= {p.name for p in folder.iterdir()}
    return folder


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Broker, Path]]:
    """deploy/mosquitto with its TLS listener on a free port; (the broker, the CA file)."""
    require_mosquitto("openssl", "bash")
    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    work = tmp_path_factory.mktemp("mosquitto")
    with deployed_mosquitto(work, make_passwd(work / "passwd", ACCOUNTS), certs=certs) as deployed:
        assert deployed.tls_port is not None
        yield deployed, certs / "ca.crt"


def _tls_url(broker: Broker, account: str | None = None) -> str:
    login = f"{account}:pw-{account}@" if account else ""
    return f"mqtts://{login}127.0.0.1:{broker.tls_port}"


def test_the_simulators_device_publishes_over_tls_and_ingest_receives_it(
        broker: tuple[Broker, Path], tmp_path: Path) -> None:
    from config import example_dir, load_config
    from ingest.service import IngestService
    from sensors.device import Device
    from sensors.simulator import PlannedMessage, reading_topic

    deployed, ca = broker
    secret = tmp_path / "mqtt_password"
    secret.write_text("pw-hazwatch-ingest\n")
    # ingest as docker-compose would run it against a TLS broker: URL, account and CA from the
    # environment, the password from a secret file
    config = load_config(example_dir(), env={
        "HAZWATCH_MQTT_URL": _tls_url(deployed), "HAZWATCH_MQTT_USERNAME": "hazwatch-ingest",
        "HAZWATCH_MQTT_PASSWORD_FILE": str(secret), "HAZWATCH_MQTT_CA_FILE": str(ca)})
    ingest = IngestService(config, client_id=f"test-ingest-{uuid.uuid4().hex[:8]}")
    subscribed = threading.Event()
    ingest.on_subscribed = subscribed.set
    client = ingest._connect_mqtt()
    client.loop_start()
    device = None
    try:
        wait_for(subscribed.is_set, 5, "ingest's SUBACK over TLS")
        assert isinstance(client.socket(), ssl.SSLSocket)
        device = Device("CH-001", MqttSettings(url=_tls_url(deployed), ca_file=str(ca)), password="pw-CH-001").connect()
        assert isinstance(device.client.socket(), ssl.SSLSocket)
        reading = orjson.dumps({"ts": 1, "v": 1.5})
        device.publish(PlannedMessage(0.0, reading_topic("CH-001", "GT-101"), reading))
        assert device.wait_acknowledged(5)
        received: dict[bytes, bytes] = {}

        def got_it() -> bool:
            for arrival in ingest.inbox.take(100, timeout=0.1):
                received.update((m.topic, m.payload) for m in arrival.messages)
            return b"hw/v1/CH-001/GT-101/reading" in received

        wait_for(got_it, 5, "the reading at ingest")
        assert received[b"hw/v1/CH-001/GT-101/reading"] == reading
    finally:
        if device is not None:
            device.close()
        client.disconnect()
        client.loop_stop()


def test_the_cap_publisher_broadcasts_over_tls(broker: tuple[Broker, Path]) -> None:
    from alerts.service import CapPublisher

    deployed, ca = broker
    assert deployed.tls_port is not None
    speaker = Account(deployed.tls_port, "loudspeaker", ca_file=ca)
    cap = CapPublisher(MqttSettings(url=_tls_url(deployed), username="hazwatch-alerts",
                                    password="pw-hazwatch-alerts", ca_file=str(ca)))
    try:
        assert all(speaker.subscribe("hw/v1/broadcast/#"))
        wait_for(cap.client.is_connected, 5, "the CAP publisher over TLS")
        assert isinstance(cap.client.socket(), ssl.SSLSocket)
        cap.publish("Z-1", b"<alert/>")  # returns once the broker acknowledged it (PUBACK)
        speaker.subscribe("hazwatch-test/barrier")  # its SUBACK comes after what was delivered
        assert speaker.received == [("hw/v1/broadcast/Z-1/cap", b"<alert/>")]
    finally:
        cap.close()
        speaker.close()


def test_a_client_without_the_ca_is_refused(broker: tuple[Broker, Path]) -> None:
    from sensors.device import Device, PublishError

    deployed, ca = broker
    # the system's CA store does not know the private CA: the broker's certificate is not trusted
    with pytest.raises(PublishError) as refused:
        Device("CH-001", _tls_url(deployed), password="pw-CH-001").connect()
    assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
    assert refused.value.__cause__.verify_message == "self-signed certificate in certificate chain"
    # with the CA the channel is trusted, and the accounts still apply on the TLS listener
    assert deployed.tls_port is not None
    wrong = Account(deployed.tls_port, "CH-001", password="wrong", ca_file=ca)
    wrong.close()
    assert wrong.connack == "Not authorized"
