"""deploy/mosquitto as written, run by a real Mosquitto on free local ports, and MQTT test accounts.

:func:`deployed_mosquitto` runs ``deploy/mosquitto/mosquitto.conf`` with its ACL and a given
password file: its plain listener (1883) moves to a free port on 127.0.0.1, and so does its TLS
listener (8883) when certificates are given; without them the TLS block is left out.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compose import MOSQUITTO_DIR

__all__ = ["Account", "Broker", "connack", "deployed_conf", "deployed_mosquitto", "make_passwd", "parse_conf", "require_mosquitto"]

#: The TLS listener's block in mosquitto.conf: the listener line and its own settings.
TLS_BLOCK = re.compile(r"(?m)^listener 8883\n(?:(?:cafile|certfile|keyfile|require_certificate|tls_version) .*\n)+")


def require_mosquitto(*more: str) -> None:
    """Skip without Mosquitto (and the other programs named); under CI, which installs them, fail."""
    missing = [p for p in ("mosquitto", "mosquitto_passwd", *more) if not shutil.which(p)]
    if missing:
        message = f"not on PATH: {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def parse_conf(path: Path) -> dict[str, list[str]]:
    """Each key of a Mosquitto configuration -> its values, in order."""
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, _, value = line.split("#", 1)[0].strip().partition(" ")
        if key:
            out.setdefault(key, []).append(value.strip())
    return out


def make_passwd(path: Path, accounts: tuple[str, ...]) -> Path:
    """A Mosquitto password file with the password ``pw-<user>`` for each account."""
    path.touch(mode=0o600)
    for user in accounts:
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, f"pw-{user}"], check=True, capture_output=True)
    return path


@dataclass(frozen=True)
class Broker:
    port: int
    """The plain listener (1883 in production)."""
    tls_port: int | None
    """The TLS listener (8883), when certificates were given."""


def deployed_conf(tmp_path: Path, passwd: Path, certs: Path | None = None) -> tuple[Path, Broker]:
    """deploy/mosquitto/mosquitto.conf rewritten into ``tmp_path`` for this machine: free local ports,
    ``passwd``, the repository's ACL, and the TLS listener with ``certs`` (or none without)."""
    from hazwatch.runtime import free_port

    port = free_port()
    tls_port = free_port() if certs is not None else None
    (tmp_path / "data").mkdir()
    conf, n = re.subn(r"(?m)^listener 1883$", f"listener {port} 127.0.0.1",
                      (MOSQUITTO_DIR / "mosquitto.conf").read_text(encoding="utf-8"))
    assert n == 1, "mosquitto.conf has no `listener 1883` line"
    if certs is None:
        conf, n = TLS_BLOCK.subn("", conf)
    else:
        conf, n = re.subn(r"(?m)^listener 8883$", f"listener {tls_port} 127.0.0.1", conf)
        conf = conf.replace("/mosquitto/certs/", f"{certs}/")
    assert n == 1, "mosquitto.conf has no TLS block (`listener 8883` and its files)"
    for container_path, local in (("/mosquitto/config/passwd", str(passwd)),
                                  ("/mosquitto/config/acl", str(MOSQUITTO_DIR / "acl")),
                                  ("/mosquitto/data/", f"{tmp_path}/data/")):
        conf = conf.replace(container_path, local)
    assert not re.search(r"(?m)^[^#]*\s/mosquitto/", conf), "a container path is left"
    conf += f"\nuser {getpass.getuser()}\n"  # as root, stay root: the test's files are private
    (tmp_path / "mosquitto.conf").write_text(conf)
    return tmp_path / "mosquitto.conf", Broker(port, tls_port)


@contextlib.contextmanager
def deployed_mosquitto(tmp_path: Path, passwd: Path, certs: Path | None = None) -> Iterator[Broker]:
    """deploy/mosquitto as written, with ``passwd`` and, given ``certs`` (a folder with ca.crt,
    server.crt and server.key), its TLS listener."""
    from hazwatch.runtime import wait_for

    conf_path, broker = deployed_conf(tmp_path, passwd, certs)
    proc = subprocess.Popen(["mosquitto", "-c", str(conf_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: proc.poll() is not None or connack(broker.port, None) == "Not authorized", 5, "mosquitto")
        assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")
        yield broker
    finally:
        proc.terminate()
        proc.wait(5)


@dataclass
class Account:
    """One MQTT connection as `user`, recording what it receives; over TLS with ``ca_file``."""

    port: int
    user: str | None
    password: str | None = None
    """Default: ``pw-<user>``, as the ``broker`` fixture creates the accounts."""
    ca_file: Path | None = None
    received: list[tuple[str, bytes]] = field(default_factory=list)
    connack: str | None = None
    client: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import paho.mqtt.client as mqtt

        connected = threading.Event()

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            self.connack = str(rc)
            connected.set()

        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{self.user}")
        if self.user:
            self.client.username_pw_set(self.user, self.password or f"pw-{self.user}")
        if self.ca_file is not None:
            self.client.tls_set(ca_certs=str(self.ca_file))
        self.client.on_connect = on_connect
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        assert connected.wait(5)

    def subscribe(self, *topics: str) -> list[bool]:
        done = threading.Event()
        codes: list[Any] = []
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: (codes.extend(rcs), done.set())
        self.client.subscribe([(t, 1) for t in topics])
        assert done.wait(5)
        return [not rc.is_failure for rc in codes]

    def publish(self, topic: str) -> None:
        self.client.publish(topic, topic.encode(), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes the network thread, which loop_stop() joins
        self.client.loop_stop()


def connack(port: int, user: str | None) -> str | None:
    """The broker's answer to a CONNECT as ``user`` (None: anonymous); None if not listening."""
    try:
        account = Account(port, user)
    except OSError:  # not listening yet
        return None
    account.close()
    return account.connack
