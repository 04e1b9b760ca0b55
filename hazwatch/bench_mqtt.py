"""``hazwatch bench mqtt``: what the MQTT broker alone delivers on this machine, per persistence mode.

The physical limit under ingest: the embedded stack's Mosquitto (its accounts and ACL), one paho
subscriber on ``hw/v1/#`` with a persistent session at QoS 1 (as ingest subscribes), and the
benchmark's load process publishing single readings at QoS 1 through one device per site. Each
persistence mode is one broker:

- ``shipped``: the configuration hazwatch ships: the database rewritten once a second
  (``autosave_interval 1``), so a crash can lose what was queued for an absent subscriber since;
- ``every-change``: rewritten after every broker loop that changed something
  (``autosave_on_changes true``), which narrows that window to one loop;
- ``changes100``: rewritten after 100 changes;
- ``memory``: no persistence at all.

Reported per mode: messages acknowledged to the publishers, received by the subscriber, the rate
over the time from the first publish to the last message received, and the broker's CPU µs per
message.
"""

from __future__ import annotations

import multiprocessing as mp
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import paho.mqtt.client as mqtt
import typer
from rich.console import Console
from rich.table import Table

from config import example_dir, load_config
from hazwatch.bench_ingest import LOADERS, cpu_s, plan_messages
from hazwatch.embedded_mqtt import broker_files, mqtt_ready
from hazwatch.runtime import Process, free_port, wait_for

__all__ = ["MODES", "bench_mqtt", "configure", "mqtt_command"]

MODES = {
    "shipped": {},
    "every-change": {"autosave_on_changes": "true", "autosave_interval": "1"},
    "changes100": {"autosave_on_changes": "true", "autosave_interval": "100"},
    "memory": {"persistence": "false"},
}


def configure(conf: Path, changes: dict[str, str]) -> None:
    text = conf.read_text()
    for key, value in changes.items():
        text = re.sub(rf"(?m)^{key} .*$", f"{key} {value}", text)
    conf.write_text(text)


class _Subscriber:
    def __init__(self, port: int, login: tuple[str, str], qos: int = 1) -> None:
        self.received = 0
        self.last = 0.0
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-subscriber",
                                  clean_session=False)
        self.client.username_pw_set(*login)
        self.client.on_connect = lambda c, *_: c.subscribe("hw/v1/#", qos=qos)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the subscriber could not subscribe"

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/reading"):
            self.received += 1
            self.last = time.monotonic()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _one(mode: str, readings: int, inflight: int, workdir: Path, log: Any, loader: str, qos: int = 1) -> dict[str, Any]:
    config_dir = example_dir()
    sites = [s.id for s in load_config(config_dir).sites]
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv, kind, passwords = broker_files(workdir, port, sites)
    if kind != "mosquitto":
        raise RuntimeError("hazwatch bench mqtt needs Mosquitto")
    configure(Path(argv[-1]), MODES[mode])
    broker = Process("mqtt-broker", argv, workdir / "mosquitto.log", {}).start()
    try:
        wait_for(lambda: mqtt_ready(port, ("hazwatch-probe", passwords["hazwatch-probe"])), 30, "Mosquitto")
        sub = _Subscriber(port, ("hazwatch-ingest", passwords["hazwatch-ingest"]), qos)
        per_site = plan_messages(config_dir, readings, "single", int(time.time() * 1000) - 3_600_000)
        ctx = mp.get_context("fork")
        go, out = ctx.Event(), ctx.Queue()
        load = ctx.Process(target=LOADERS[loader], args=(port, passwords, per_site, inflight, go, out))
        load.start()
        assert broker.popen is not None
        cpu0 = cpu_s(broker.popen.pid)
        log(f"{mode}: publishing {readings:,} single readings")
        t0 = time.monotonic()
        go.set()
        published = out.get(timeout=600)
        wait_for(lambda: sub.received >= published["acknowledged"] or time.monotonic() - sub.last > 10,
                 600, "the subscriber")
        cpu = cpu_s(broker.popen.pid) - cpu0
        load.join(10)
        sub.close()
        wall = sub.last - t0
        return {"mode": mode, "qos": qos, "acknowledged": published["acknowledged"], "received": sub.received,
                "wall_s": round(wall, 2), "messages_per_s": round(sub.received / wall) if wall > 0 else None,
                "broker_cpu_us_per_message": round(cpu / max(sub.received, 1) * 1e6, 1),
                "load_cpu_us_per_message": round(published["cpu_s"] / max(sub.received, 1) * 1e6, 1)}
    finally:
        broker.stop()


def bench_mqtt(*, readings: int = 50_000, modes: list[str] | None = None, inflight: int = 100,
               workdir: Path | None = None, log: Any = print, loader: str = "paho", qos: int = 1) -> list[dict[str, Any]]:
    """One run per persistence mode; ``qos``: the subscriber's (the devices publish at QoS 1)."""
    base = Path(workdir or tempfile.mkdtemp(prefix="hazwatch-bench-mqtt-"))
    return [_one(mode, readings, inflight, base / mode, log, loader, qos) for mode in (modes or list(MODES))]


def mqtt_command(
    readings: Annotated[int, typer.Option(help="Single readings per mode")] = 50_000,
    mode: Annotated[list[str] | None, typer.Option(help="shipped, every-change, changes100 or memory (repeatable; default all)")] = None,
    inflight: Annotated[int, typer.Option(help="Unacknowledged QoS 1 messages per device")] = 100,
    loader: Annotated[str, typer.Option(help="paho or mosquitto_pub (see bench ingest)")] = "paho",
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """The MQTT broker alone: Mosquitto -> one QoS 1 subscriber, per persistence mode."""
    from hazwatch.bench import machine_info

    for m in mode or []:
        if m not in MODES:
            raise typer.BadParameter(f"one of {', '.join(MODES)}", param_hint="--mode")
    err = Console(stderr=True)
    rows = bench_mqtt(readings=readings, modes=mode, inflight=inflight, loader=loader,
                      log=lambda msg: err.print(f"[dim]{msg}[/]"))
    if json:
        sys.stdout.write(orjson.dumps({"loader": loader, "modes": rows, "machine": machine_info()}).decode() + "\n")
        return
    table = Table(title=f"hazwatch bench mqtt (Mosquitto -> one QoS 1 subscriber, load {loader})")
    for col in ("mode", "acknowledged", "received", "wall s", "messages/s", "broker CPU µs/msg", "load CPU µs/msg"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in rows:
        table.add_row(r["mode"], f"{r['acknowledged']:,}", f"{r['received']:,}", str(r["wall_s"]),
                      f"{r['messages_per_s']:,}", str(r["broker_cpu_us_per_message"]),
                      str(r["load_cpu_us_per_message"]))
    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough for the table
        console = Console(width=120)
    console.print(table)
