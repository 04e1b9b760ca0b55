"""``hazwatch bench history``: the history writer alone, on a pre-filled readings topic.

The embedded stack's Kafka gets N readings of the pipeline benchmark's configuration (the example
plus 1,000 load sites of 10 sensors, so that a sensor's readings, one period apart, are all recent)
in ``hazwatch.readings`` (the records of :func:`hazwatch.bench_worker.plan_records`: one reading per
record, or 50), then
``hazwatch history`` starts against a fresh VictoriaMetrics and copies them. Timed from the
writer's ready signal until its committed offsets reach the end of the topic. Reported: readings/s,
CPU µs per reading of the writer and of the store, and the readings the store holds afterwards
(read back: every one must be there).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from config.topics import READINGS
from formats.readings import decode as decode_readings
from hazwatch.bench_ingest import cpu_s
from hazwatch.bench_worker import _prefill, _wait, plan_records
from hazwatch.embedded_history import history_ready, victoria_metrics
from hazwatch.runtime import EmbeddedStack, free_port, wait_for
from history.reader import VictoriaMetricsReader

__all__ = ["bench_history", "history_command"]

GROUP = "hazwatch-history"


def _stored(url: str, start_ms: int, end_ms: int) -> int:
    reader = VictoriaMetricsReader(url, timeout_s=120)
    return sum(len(s["values"]) for s in reader.export("reading_v", start_ms, end_ms))


def bench_history(*, readings: int = 200_000, shape: str = "single", kafka: str | None = None,
                  sites: int = 1000, log: Any = print) -> dict[str, Any]:
    from kafka import KafkaAdminClient

    from hazwatch.bench_pipeline import write_config

    workdir = Path(tempfile.mkdtemp(prefix="hazwatch-bench-history-"))
    config_dir = workdir / "config"
    write_config(config_dir, sites=sites, sensors=10)  # readings spread over many sensors: recent times
    now = int(time.time() * 1000)
    with EmbeddedStack(workdir, kafka=kafka) as stack:
        records = plan_records(config_dir, readings, shape, now)
        end = _prefill(stack, records)
        log(f"{READINGS}: {readings:,} readings in {len(records):,} records ({shape}), Kafka {stack.kafka_kind}")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # a century: the planned readings go back months, one sensor period apart, and a store
        # drops what is older than its retention on arrival
        store = victoria_metrics(workdir, port, retention="100y").start()
        stack.processes.append(store)
        wait_for(lambda: history_ready(url), 60, "VictoriaMetrics")
        ready = workdir / "history.ready"
        writer = stack.hazwatch("history", "history", "--config", str(config_dir),
                                env={"HAZWATCH_HISTORY_URL": url, "HAZWATCH_READY_FILE": str(ready)})
        admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="bench-history")

        def done() -> bool:
            found = admin.list_group_offsets({GROUP: None}).get(GROUP, {})
            committed = {tp.partition: m.offset for tp, m in found.items() if tp.topic == READINGS}
            return all(committed.get(p, -1) >= n for p, n in end.items() if n > 0)

        try:
            _wait(writer, ready.exists, 120, "history ready")
            assert store.popen is not None
            t0, cpu0 = time.monotonic(), (cpu_s(writer.pid), cpu_s(store.popen.pid))
            _wait(writer, done, max(300.0, readings / 500), "history done", poll_s=0.1)
            seconds = time.monotonic() - t0
            cpu = (cpu_s(writer.pid) - cpu0[0], cpu_s(store.popen.pid) - cpu0[1])
        finally:
            admin.close()
        oldest = min(min(decode_readings(value).ts) for _key, value in records)
        stored = 0
        deadline = time.monotonic() + 60
        while stored < readings and time.monotonic() < deadline:  # searchable after the store's next flush
            stored = _stored(url, oldest, now + 1000)
    return {"readings": readings, "records": len(records), "shape": shape, "kafka": stack.kafka_kind,
            "seconds": round(seconds, 2), "readings_per_s": round(readings / seconds),
            "cpu_us_per_reading": {"history": round(cpu[0] / readings * 1e6, 2),
                                   "victoria-metrics": round(cpu[1] / readings * 1e6, 2)},
            "stored": stored}


def history_command(
    readings: Annotated[int, typer.Option(help="Readings in the pre-filled topic")] = 200_000,
    shape: Annotated[str, typer.Option(help="single (one reading per record) or batch (50 per record)")] = "single",
    kafka: Annotated[str | None, typer.Option(help="apache or tansu (default: HAZWATCH_KAFKA, else tansu)")] = None,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """The history writer alone on a pre-filled readings topic, into a real VictoriaMetrics."""
    from hazwatch.bench import machine_info

    if shape not in ("single", "batch"):
        raise typer.BadParameter("single or batch", param_hint="--shape")
    err = Console(stderr=True)
    result = bench_history(readings=readings, shape=shape, kafka=kafka, log=lambda m: err.print(f"[dim]{m}[/]"))
    result["machine"] = machine_info()
    if json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    table = Table(title=f"hazwatch bench history ({shape}, Kafka {result['kafka']})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in ("readings", "records", "seconds", "readings_per_s", "stored"):
        table.add_row(key, f"{result[key]:,}")
    for name, us in result["cpu_us_per_reading"].items():
        table.add_row(f"CPU µs/reading: {name}", str(us))
    Console().print(table)
