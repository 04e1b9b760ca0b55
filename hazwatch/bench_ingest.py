"""``hazwatch bench ingest``: MQTT -> ingest -> Kafka on the embedded stack, as fast as it goes.

The first stage of the pipeline benchmark. Only ingest runs. A load process (its own process, so
that the two cores are shared as in production) publishes N readings at QoS 1 through one device
client per site of the example configuration, logged in with the site's account, as single
readings or as gateway batches of 50, each device with up to ``inflight`` unacknowledged messages.
Every reading is distinct (its own timestamp), so ingest's redelivery check drops none.

Reported: readings published and acknowledged by the broker; readings in ``hazwatch.readings``
(counted by reading the topic back), lost (acknowledged but not in Kafka) and duplicated; the
time from the first publish until the topic stopped growing, and readings/s over it; CPU seconds
of ingest, the load process and each broker, per reading (``/proc/<pid>/stat``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from config import example_dir, load_config
from config.topics import READINGS
from formats.readings import decode as decode_readings
from hazwatch.embedded_mqtt import PROBE_ACCOUNT, mqtt_ready
from hazwatch.kafka_admin import all_partitions
from hazwatch.runtime import EmbeddedStack, wait_for

__all__ = ["LOADERS", "bench_ingest", "count_readings", "cpu_s", "ingest_command", "iter_readings", "plan_messages"]

BATCH = 50
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def plan_messages(config_dir: Path, readings: int, shape: str, start_ms: int) -> dict[str, list[tuple[str, bytes]]]:
    """Per site, the messages carrying ``readings`` readings, the sensors in turn."""
    config = load_config(config_dir)
    sensors = [(s.id, x.id) for s in config.sites for x in s.sensors]
    per_site: dict[str, list[tuple[str, bytes]]] = {s.id: [] for s in config.sites}
    if shape == "single":
        for n in range(readings):
            site, sensor = sensors[n % len(sensors)]
            per_site[site].append((f"hw/v1/{site}/{sensor}/reading",
                                   orjson.dumps({"ts": start_ms + n, "v": 1.0})))
        return per_site
    by_site: dict[str, list[str]] = {}
    for site, sensor in sensors:
        by_site.setdefault(site, []).append(sensor)
    sites = list(by_site)
    for n in range(0, readings, BATCH):
        site = sites[(n // BATCH) % len(sites)]
        items = [{"sensor": by_site[site][k % len(by_site[site])], "ts": start_ms + n + k, "v": 1.0}
                 for k in range(min(BATCH, readings - n))]
        per_site[site].append((f"hw/v1/{site}/batch", orjson.dumps({"readings": items})))
    return per_site


def _load(url_port: int, passwords: dict[str, str], per_site: dict[str, list[tuple[str, bytes]]],
          inflight: int, go: Any, out: Any) -> None:
    """The load process: publish everything, wait for every PUBACK, report counts and CPU."""
    import paho.mqtt.client as mqtt

    done = threading.Semaphore(0)
    acked = Counter[str]()
    clients = {}
    for site in per_site:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{site}")
        c.username_pw_set(site, passwords.get(site))
        c.max_inflight_messages_set(inflight)
        c.max_queued_messages_set(0)

        def on_publish(_c: Any, _u: Any, _mid: int, _rc: Any, _p: Any, site: str = site) -> None:
            acked[site] += 1
            done.release()

        c.on_publish = on_publish
        c.connect("127.0.0.1", url_port)
        c.loop_start()
        clients[site] = c
    go.wait()
    t0 = time.monotonic()
    total = 0
    for site, messages in per_site.items():
        for topic, payload in messages:
            clients[site].publish(topic, payload, qos=1)
            total += 1
    for _ in range(total):
        done.acquire(timeout=300)
    elapsed = time.monotonic() - t0
    for c in clients.values():
        c.disconnect()
        c.loop_stop()
    usage = os.times()
    out.put({"messages": total, "acknowledged": sum(acked.values()), "publish_s": elapsed,
             "cpu_s": usage.user + usage.system})


def _load_mosquitto_pub(port: int, passwords: dict[str, str], per_site: dict[str, list[tuple[str, bytes]]],
                        inflight: int, go: Any, out: Any) -> None:
    """The load process with Mosquitto's own C client: one ``mosquitto_pub -l`` per topic, fed the
    payloads on stdin (a few µs of CPU per message, where paho needs about a hundred)."""
    import subprocess

    by_topic: dict[tuple[str, str], list[bytes]] = {}
    for site, messages in per_site.items():
        for topic, payload in messages:
            by_topic.setdefault((site, topic), []).append(payload)
    go.wait()
    t0 = time.monotonic()
    procs = []
    for (site, topic), payloads in by_topic.items():
        proc = subprocess.Popen(["mosquitto_pub", "-p", str(port), "-u", site, "-P", passwords[site], "-q", "1",
                                 "-M", str(inflight), "-t", topic, "-l"],
                                stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        procs.append((proc, b"\n".join(payloads) + b"\n", len(payloads)))
    for proc, data, _n in procs:
        assert proc.stdin is not None
        proc.stdin.write(data)
        proc.stdin.close()
    total = sum(n for _p, _d, n in procs)
    sent = sum(n for proc, _d, n in procs if proc.wait() == 0)
    usage = os.times()
    out.put({"messages": total, "acknowledged": sent, "publish_s": time.monotonic() - t0,
             "cpu_s": usage.user + usage.system + usage.children_user + usage.children_system})


LOADERS = {"paho": _load, "mosquitto_pub": _load_mosquitto_pub}


def iter_readings(bootstrap: str) -> Iterator[tuple[str, str, int]]:
    """Every reading in ``hazwatch.readings`` as (site, sensor, ts), read from the start to the end."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="bench-count")
    try:
        parts = all_partitions(consumer, [READINGS])
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                for rec in records:
                    b = decode_readings(rec.value)
                    yield from ((b.site, s, t) for s, t in zip(b.sensor, b.ts, strict=True))
    finally:
        consumer.close()


def count_readings(bootstrap: str) -> tuple[int, int]:
    """(readings, distinct (site, sensor, ts)) in ``hazwatch.readings``, read from the start."""
    total, seen = 0, set()
    for reading in iter_readings(bootstrap):
        total += 1
        seen.add(reading)
    return total, len(seen)


def _end_offsets(bootstrap: str) -> Any:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-offsets")
    parts = [TopicPartition(READINGS, p) for p in consumer.partitions_for_topic(READINGS) or ()]

    def total() -> int:
        return sum(consumer.end_offsets(parts).values())

    return consumer, total


def bench_ingest(*, readings: int = 100_000, shape: str = "single", kafka: str | None = None,
                 inflight: int = 100, workdir: Path | None = None, log: Any = print,
                 inject_loss: int = 0, loader: str = "paho", persistence: str = "shipped") -> dict[str, Any]:
    """Run the benchmark (module docstring). ``inject_loss``: that many single readings go to a
    topic the broker acknowledges and drops (the ACL denies it), to prove the loss count."""
    config_dir = example_dir()
    sites = [s.id for s in load_config(config_dir).sites]
    workdir = Path(workdir or tempfile.mkdtemp(prefix="hazwatch-bench-ingest-"))
    with EmbeddedStack(workdir, kafka=kafka, devices=sites) as stack:
        if persistence != "shipped":  # the broker again, in another persistence mode (bench mqtt)
            from hazwatch.bench_mqtt import MODES, configure

            broker = next(p for p in stack.processes if p.name == "mqtt-broker")
            broker.stop()
            configure(Path(broker.argv[-1]), MODES[persistence])
            broker.start()
            wait_for(lambda: mqtt_ready(stack.mqtt_port, stack.mqtt_login(PROBE_ACCOUNT)), 30, "Mosquitto")
        ready = workdir / "ingest.ready"
        ingest = stack.hazwatch("ingest", "ingest", "--config", str(config_dir),
                                env={"HAZWATCH_READY_FILE": str(ready)})
        wait_for(lambda: ready.exists(), 120, "ingest ready")
        per_site = plan_messages(config_dir, readings, shape, int(time.time() * 1000) - 3_600_000)
        first = per_site[sites[0]]
        first[:inject_loss] = [("hw/v1/broadcast/bench/cap", payload) for _t, payload in first[:inject_loss]]
        ctx = mp.get_context("fork")
        go, out = ctx.Event(), ctx.Queue()
        load = ctx.Process(target=LOADERS[loader],
                           args=(stack.mqtt_port, stack.mqtt_passwords, per_site, inflight, go, out))
        load.start()
        consumer, in_kafka = _end_offsets(stack.kafka_bootstrap)
        brokers = {p.name: p.popen.pid for p in stack.processes
                   if p.popen is not None and (p.name == "mqtt-broker" or p.name.startswith("kafka"))}
        assert ingest.popen is not None
        cpu0 = {"ingest": cpu_s(ingest.popen.pid), **{n: cpu_s(pid) for n, pid in brokers.items()}}
        log(f"publishing {readings:,} readings as {shape} messages ({sum(map(len, per_site.values())):,})")
        start_offsets = in_kafka()
        t0 = time.monotonic()
        go.set()
        last, last_change, published = start_offsets, time.monotonic(), None
        while True:  # until the load is done and the topic has not grown for 3 s
            time.sleep(0.1)
            now_total = in_kafka()
            if now_total != last:
                last, last_change = now_total, time.monotonic()
            if published is None and not out.empty():
                published = out.get()
            if published is None and not load.is_alive() and out.empty():
                raise RuntimeError(f"the load process failed (exit code {load.exitcode})")
            if published is not None and time.monotonic() - last_change > 3:
                break
        wall = last_change - t0
        cpu = {"ingest": cpu_s(ingest.popen.pid), **{n: cpu_s(pid) for n, pid in brokers.items()}}
        load.join(10)
        consumer.close()
        total, distinct = count_readings(stack.kafka_bootstrap)
    acked_readings = published["acknowledged"] * (1 if shape == "single" else BATCH)
    cpu_used = {n: cpu[n] - cpu0[n] for n in cpu} | {"load": published["cpu_s"]}
    return {
        "shape": shape, "kafka": stack.kafka_kind, "loader": loader, "mqtt_persistence": persistence,
        "readings": readings,
        "messages": published["messages"], "acknowledged_messages": published["acknowledged"],
        "in_kafka": total, "lost": max(0, min(readings, acked_readings) - distinct),
        "duplicated": total - distinct, "records": last - start_offsets,
        "wall_s": round(wall, 2), "readings_per_s": round(total / wall) if wall > 0 else None,
        "publish_s": round(published["publish_s"], 2),
        "cpu_us_per_reading": {n: round(v / max(total, 1) * 1e6, 1) for n, v in cpu_used.items()},
    }


def ingest_command(
    readings: Annotated[int, typer.Option(help="Readings to publish")] = 100_000,
    shape: Annotated[str, typer.Option(help="single (one reading per message) or batch (50 per message)")] = "single",
    kafka: Annotated[str | None, typer.Option(help="apache or tansu (default: HAZWATCH_KAFKA, else tansu)")] = None,
    inflight: Annotated[int, typer.Option(help="Unacknowledged QoS 1 messages per device")] = 100,
    loader: Annotated[str, typer.Option(help="paho (Python devices) or mosquitto_pub (C, one per topic)")] = "paho",
    persistence: Annotated[str, typer.Option(help="Mosquitto's: shipped, every-change, changes100 or memory (see bench mqtt)")] = "shipped",
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """MQTT -> ingest -> Kafka throughput, losses and CPU per reading (only ingest runs)."""
    from hazwatch.bench import machine_info

    if shape not in ("single", "batch"):
        raise typer.BadParameter("single or batch", param_hint="--shape")
    err = Console(stderr=True)
    if loader not in LOADERS:
        raise typer.BadParameter(" or ".join(LOADERS), param_hint="--loader")
    result = bench_ingest(readings=readings, shape=shape, kafka=kafka, inflight=inflight, loader=loader,
                          persistence=persistence,
                          log=lambda msg: err.print(f"[dim]{msg}[/]"))
    result["machine"] = machine_info()
    if json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    table = Table(title=f"hazwatch bench ingest ({result['shape']}, Kafka {result['kafka']}, "
                        f"load {result['loader']}, Mosquitto {result['mqtt_persistence']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("readings", "messages", "acknowledged_messages", "in_kafka", "lost", "duplicated", "records",
                "wall_s", "readings_per_s", "publish_s"):
        table.add_row(key, f"{result[key]:,}" if isinstance(result[key], int) else str(result[key]))
    for name, us in result["cpu_us_per_reading"].items():
        table.add_row(f"CPU µs/reading: {name}", f"{us:,}")
    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough for the table
        console = Console(width=120)
    console.print(table)
