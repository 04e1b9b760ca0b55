"""A simulated device keeps what the broker has not acknowledged and sends it again, in order,
after the broker was SIGKILLed and restarted (real Mosquitto, its embedded configuration)."""

from __future__ import annotations

import getpass
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from hazwatch.runtime import Process, free_port
from sensors.device import Device
from sensors.simulator import PlannedMessage, reading_topic


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[Process, int]]:
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nuser {getpass.getuser()}\n"
                    f"persistence true\npersistence_location {tmp_path}/\nautosave_on_changes true\n"
                    "autosave_interval 1\n")
    proc = Process("mosquitto", ["mosquitto", "-c", str(conf)], tmp_path / "mosquitto.log").start()
    try:
        yield proc, port
    finally:
        proc.stop()


def recorder(port: int, wait_for: Callable[..., None]) -> tuple[mqtt.Client, list[int]]:
    """A persistent session on hw/v1/# that reconnects by itself and records each reading's ts."""
    got: list[int] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="recorder", clean_session=False)
    client.reconnect_delay_set(min_delay=1, max_delay=2)
    client.on_connect = lambda c, *_: c.subscribe("hw/v1/+/+/reading", qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _ud, m: got.append(orjson.loads(m.payload)["ts"])
    client.connect_async("127.0.0.1", port)
    client.loop_start()
    wait_for(subscribed.is_set, what="the recorder's SUBACK")
    return client, got


def test_readings_published_across_a_broker_kill_all_arrive_in_order(
        broker: tuple[Process, int], wait_for: Callable[..., None]) -> None:
    proc, port = broker
    wait_for(lambda: _accepts(port), what="mosquitto")
    client, got = recorder(port, wait_for)
    device = Device("CH-001", f"mqtt://127.0.0.1:{port}").connect()
    try:
        readings = [PlannedMessage(0.0, reading_topic("CH-001", "GT-101"), orjson.dumps({"ts": ts, "v": 1.0}))
                    for ts in range(600)]
        for i, msg in enumerate(readings):
            if i == 200:
                proc.kill()  # the device goes on publishing into its own queue
            if i == 400:
                proc.start()
            time.sleep(0.005)  # the device's pace
            device.publish(msg)
        assert device.wait_acknowledged(120), f"{device.unacknowledged} messages never acknowledged"
        assert device.acknowledged == len(readings)
        wait_for(lambda: set(got) >= set(range(600)), timeout_s=120, what="every reading at the recorder")
        first = list(dict.fromkeys(got))
        assert first == sorted(first), "readings overtook one another"
    finally:
        device.close()
        client.disconnect()
        client.loop_stop()


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False
