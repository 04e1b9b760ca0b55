"""``hazwatch bench mqtt-crash``: what a Mosquitto crash loses while ingest is away.

Per kill: a fresh broker (the embedded stack's accounts and ACL, in a persistence mode of
``hazwatch bench mqtt``); ingest's persistent QoS 1 session subscribes and goes away; one device
publishes about 450 readings/s at QoS 1; the broker is SIGKILLed 1-4 s later (seeded) and started
again; the session comes back and takes what the broker kept. Lost = acknowledged to the device
and never delivered. ARCHITECTURE.md §12 quotes the results.
"""

from __future__ import annotations

import random
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import paho.mqtt.client as mqtt
import typer

from hazwatch.bench_mqtt import MODES, configure
from hazwatch.embedded_mqtt import broker_files, mqtt_ready
from hazwatch.runtime import free_port, wait_for

__all__ = ["crash_command", "kill_once"]

TOPIC = "hw/v1/CH-001/GT-101/reading"


def _session(port: int, password: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-ingest", clean_session=False)
    client.username_pw_set("hazwatch-ingest", password)
    return client


def kill_once(seed: int, mode: str, workdir: Path) -> tuple[int, int]:
    """(acknowledged, lost) of one kill."""
    rnd = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv, _kind, pw = broker_files(workdir, port, ["CH-001"])
    configure(Path(argv[-1]), MODES[mode])
    probe = ("hazwatch-probe", pw["hazwatch-probe"])
    broker = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: mqtt_ready(port, probe), 10, "Mosquitto")
        sub, subscribed = _session(port, pw["hazwatch-ingest"]), threading.Event()
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        sub.subscribe("hw/v1/#", qos=1)
        assert subscribed.wait(5)
        time.sleep(1.5)  # longer than one save interval: the session is on disk in every mode
        sub.disconnect()
        sub.loop_stop()
        sent: dict[int, int] = {}
        acked: list[int] = []
        device = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-device")
        device.username_pw_set("CH-001", pw["CH-001"])
        device.on_publish = lambda _c, _u, mid, _rc, _p: acked.append(mid)
        device.connect("127.0.0.1", port)
        device.loop_start()
        kill_at, n = time.monotonic() + rnd.uniform(1.0, 4.0), 0
        while time.monotonic() < kill_at:
            sent[device.publish(TOPIC, str(n).encode(), qos=1).mid] = n
            n += 1
            time.sleep(0.002)
        broker.send_signal(signal.SIGKILL)
        broker.wait()
        device.loop_stop()
        acknowledged = {sent[mid] for mid in acked if mid in sent}
        broker = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: mqtt_ready(port, probe), 10, "Mosquitto again")
        got: set[int] = set()
        last = [time.monotonic()]

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            got.add(int(msg.payload))
            last[0] = time.monotonic()

        sub = _session(port, pw["hazwatch-ingest"])
        sub.on_message = on_message
        sub.connect("127.0.0.1", port)
        sub.loop_start()
        wait_for(lambda: time.monotonic() - last[0] > 2, 60, "the queue delivered")
        sub.loop_stop()
        sub.disconnect()
        return len(acknowledged), len(acknowledged - got)
    finally:
        broker.terminate()
        broker.wait(10)


def crash_command(
    kills: Annotated[int, typer.Option(help="Broker kills (one fresh broker each)")] = 10,
    mode: Annotated[str, typer.Option(help="Mosquitto persistence (see bench mqtt)")] = "shipped",
) -> None:
    """What a Mosquitto SIGKILL loses while ingest's session is offline, per persistence mode."""
    if mode not in MODES:
        raise typer.BadParameter(f"one of {', '.join(MODES)}", param_hint="--mode")
    base = Path(tempfile.mkdtemp(prefix="hazwatch-bench-crash-"))
    total = lost = hit = 0
    for seed in range(kills):
        acknowledged, missing = kill_once(seed, mode, base / str(seed))
        typer.echo(f"kill {seed}: {acknowledged} acknowledged, {missing} lost")
        total, lost, hit = total + acknowledged, lost + missing, hit + (missing > 0)
    typer.echo(f"{mode}: {kills} kills, {hit} with a loss, {lost} of {total} acknowledged readings lost")
