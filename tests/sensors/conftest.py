"""Fixtures for the sensors tests: the example configuration, a real Mosquitto, an MQTT recorder."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from config import Config, load_config
from hazwatch.runtime import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(
    condition: Callable[[], bool], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., None]:
    """``wait_for(condition, timeout_s=10, what=...)``: poll until it holds, else fail."""
    return _wait_for


@pytest.fixture(scope="session")
def cfg() -> Config:
    return load_config(ROOT / "config" / "example")


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """A Mosquitto on a free port for this test module (local-only, anonymous, no persistence)."""
    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class Recorder:
    """A paho subscriber that records every message it gets, in arrival order."""

    client: mqtt.Client
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, predicate: Callable[[Received], bool] = lambda m: True) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if predicate(m)]


@pytest.fixture
def subscribe(broker_url: str) -> Iterator[Callable[[str], Recorder]]:
    """``subscribe(topic_filter)`` -> a connected :class:`Recorder`, subscribed (SUBACK seen)."""
    recorders: list[Recorder] = []
    host, port = broker_url.removeprefix("mqtt://").split(":")

    def make(topic_filter: str) -> Recorder:
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        rec = Recorder(client)
        subscribed = threading.Event()

        def on_message(_c: mqtt.Client, _ud: object, msg: mqtt.MQTTMessage) -> None:
            with rec.lock:
                rec.messages.append(Received(msg.topic, msg.payload, bool(msg.retain)))

        client.on_message = on_message
        client.on_connect = lambda c, *_: c.subscribe(topic_filter, qos=1)
        client.on_subscribe = lambda *_: subscribed.set()
        client.connect(host, int(port))
        client.loop_start()
        recorders.append(rec)
        assert subscribed.wait(10), f"no SUBACK for {topic_filter}"
        return rec

    yield make
    for rec in recorders:
        rec.client.disconnect()
        rec.client.loop_stop()
