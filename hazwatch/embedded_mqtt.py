"""The embedded stack's MQTT broker: its configuration files, accounts and readiness probe.

Mosquitto (when installed) runs with the production broker's settings (deploy/mosquitto/
mosquitto.conf: sessions, persistence, queues) and its ACL (deploy/mosquitto/acl), and refuses
anonymous clients. Every stack creates its own accounts with random passwords, hashed by
``mosquitto_passwd``: one per site's device (the site id is the user name), one per service, the
loudspeaker gateways' and the readiness probe's. The devices' passwords are also written to
``mqtt-devices.json`` for the simulator. Without Mosquitto, the ``amqtt`` broker from PyPI stands in,
anonymous and without an ACL: a fallback for machines without the system package, not a
configuration to rely on.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

__all__ = ["MOSQUITTO_ACL", "PROBE_ACCOUNT", "SERVICE_ACCOUNTS", "broker_files", "mqtt_ready"]

MOSQUITTO_ACL = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "acl"
#: The services that log in to MQTT, by their command, and the account each uses (the ACL's).
SERVICE_ACCOUNTS = {"ingest": "hazwatch-ingest", "alerts": "hazwatch-alerts"}
PROBE_ACCOUNT = "hazwatch-probe"
"""The readiness probe's account: the ACL grants it nothing."""


def broker_files(workdir: Path, port: int, devices: Sequence[str]) -> tuple[list[str], str, dict[str, str]]:
    """Write the broker's files under ``workdir``; return its argv, its kind and the accounts
    (user -> password; empty for amqtt)."""
    if not shutil.which("mosquitto"):
        conf = workdir / "amqtt.yaml"
        conf.write_text(
            f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
        )
        return [str(Path(sys.executable).with_name("amqtt")), "-c", str(conf)], "amqtt", {}
    if not MOSQUITTO_ACL.is_file():
        raise FileNotFoundError(f"{MOSQUITTO_ACL}: the Mosquitto ACL is missing (run hazwatch from a checkout)")
    passwords = {name: secrets.token_urlsafe(18)
                 for name in [*SERVICE_ACCOUNTS.values(), "loudspeaker", PROBE_ACCOUNT, *devices]}
    passwd = _private(workdir / "mqtt-passwd", "".join(f"{n}:{p}\n" for n, p in passwords.items()).encode())
    subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)  # hash in place
    _private(workdir / "mqtt-devices.json", orjson.dumps({d: passwords[d] for d in devices}))
    data = workdir / "mqtt-data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "mosquitto.db").unlink(missing_ok=True)  # a new stack, an empty broker
    # Sessions, persistence and queues as in production (docs/ARCHITECTURE.md §9): ingest's session
    # survives a restart of this broker (its Process killed and started again, on the same port).
    # Run as root, Mosquitto would switch to the user `mosquitto`, which cannot write the database
    # here: stay this user.
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\nuser {getpass.getuser()}\n"
        f"password_file {passwd}\nacl_file {MOSQUITTO_ACL}\n"
        f"persistence true\npersistence_location {data}/\nautosave_on_changes false\n"
        "autosave_interval 1\nmax_inflight_messages 50000\nset_tcp_nodelay true\n"
        "max_queued_messages 2000000\nmax_queued_bytes 1073741824\nsys_interval 10\n"
    )
    return ["mosquitto", "-c", str(conf)], "mosquitto", passwords


def _private(path: Path, content: bytes) -> Path:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    return path


def mqtt_ready(port: int, login: tuple[str, str] | None) -> bool:
    """Whether the embedded broker (plain MQTT on loopback: it has no TLS listener) accepts ``login``."""
    import paho.mqtt.client as mqtt

    from config.mqtt import configure_client

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"hw-probe-{os.getpid()}")
    host, port = configure_client(client, f"mqtt://127.0.0.1:{port}", login=login)
    try:
        client.connect(host, port, keepalive=5)
        rc = client.loop(timeout=1.0)
        return rc == mqtt.MQTT_ERR_SUCCESS and client.is_connected()
    finally:
        with contextlib.suppress(Exception):
            client.disconnect()
