"""``hazwatch bench worker``: the rules stage alone, hazwatch against two peers, on one embedded broker.

Before anything is timed, the embedded stack's Kafka broker (Tansu or Apache Kafka) gets N readings
of the example configuration in ``hazwatch.readings``, in the format ingest produces
(:class:`formats.readings.Readings`: ``{"site", "sensor", "ts", "v", "q", "i", "cfg"}``, key = site id):
one reading per record (``single``) or 50 readings of one site per record (``batch``). A sensor
reports at its configured period; of each 1000 of its readings, 900 are normal, 50 lie between its
first and second rung, then 50 beyond its last rung, so levels are raised and cleared.

Then, one at a time, each contender consumes the whole topic from the beginning in its own process
and consumer group, committing offsets every 0.5 s:

- ``hazwatch``: the real rules worker (``hazwatch rules``: faust micro-batches, the numba engine with
  every rule of the configuration, state in a changelog-backed table, warnings acknowledged);
- ``faust``: a plain faust agent, one event at a time: orjson, the first threshold rule of each sensor
  (its ladder; no deadband, minimum duration or other rules), the level per (site, sensor) in a
  faust Table, a warning to ``bench.faust.warnings`` when the level changes;
- ``quix``: the same rule in a quixstreams ``Application`` (``sdf.apply(..., stateful=True)``, the level
  per sensor in its RocksDB state under the work directory), warnings to ``bench.quix.warnings``.

A contender is done when its group's committed offsets on ``hazwatch.readings`` reach the end offsets
the producer was acknowledged (polled every 0.1 s: the time includes up to one commit interval).
Reported per contender: seconds from its ready signal (partitions assigned and tables recovered;
start-up is not timed) to done, readings/s over them, CPU µs per reading of its process and of the
Kafka broker process(es) over the same interval (``/proc/<pid>/stat``), and the warnings it emitted
(records in its warnings topic after it stopped). Ratios are hazwatch's value over the peer's: for
readings/s above 1 means hazwatch is faster, for CPU µs per reading below 1 that it is cheaper.

quixstreams is in the ``test`` extras only (``pip install -e ".[test]"``, which ``make test`` runs): it is
a yardstick, not a part of hazwatch. It requires pydantic < 2.14, which is why hazwatch pins 2.13.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from config import Config, example_dir, load_config
from config.topics import READINGS, WARNINGS
from formats.readings import Readings
from formats.readings import decode as decode_readings
from hazwatch.bench_ingest import cpu_s, plan_messages
from hazwatch.kafka_admin import all_partitions
from hazwatch.runtime import EmbeddedStack, Process, wait_for

__all__ = ["CONTENDERS", "bench_worker", "level_of", "plan_records", "rule_table", "worker_command"]

CONTENDERS = ("hazwatch", "faust", "quix")
GROUPS = {"hazwatch": "hazwatch-rules", "faust": "bench-faust", "quix": "bench-quix"}
WARNING_TOPICS = {"hazwatch": WARNINGS, "faust": "bench.faust.warnings", "quix": "bench.quix.warnings"}
COMMIT_INTERVAL_S = 0.5
CYCLE, EXCURSION = 1000, 50
"""Of each CYCLE readings of a sensor, from the EXCURSION-th on: EXCURSION on the first rung, then
EXCURSION beyond the last; the others normal (so a sensor's first 200 readings have warnings)."""
QUIX_INSTALL = 'pip install -e ".[test]" (the test extras carry quixstreams)'

Rule = tuple[bool, list[tuple[str, float]]]


def rule_table(config: Config) -> dict[str, dict[str, Rule]]:
    """site -> sensor -> (direction is high, [(level, rung value), ...]) of its first threshold rule."""
    return {s.id: {x.id: (x.thresholds[0].direction == "high", [(r.level, r.value) for r in x.thresholds[0].ladder])
                   for x in s.sensors if x.thresholds}
            for s in config.sites}


def level_of(rule: Rule, v: float) -> str:
    """The most severe rung the value reaches ("" below the first): the peers' whole rule."""
    high, ladder = rule
    level = ""
    for name, at in ladder:
        if not (v >= at if high else v <= at):
            break
        level = name
    return level


def _changes(value: bytes, rules: dict[str, dict[str, Rule]], get: Any, put: Any) -> list[bytes]:
    """The peers' rule on one record: a warning for each reading that changes its sensor's level
    (``get(site, sensor)`` -> the level kept, ``put(site, sensor, level)`` keeps a new one)."""
    b = decode_readings(value)
    site = b.site
    site_rules = rules.get(site, {})
    out = []
    for sensor, ts, v in zip(b.sensor, b.ts, b.v, strict=True):
        rule = site_rules.get(sensor)
        if rule is not None and get(site, sensor) != (level := level_of(rule, v)):
            put(site, sensor, level)
            out.append(orjson.dumps({"site": site, "sensor": sensor, "ts": ts, "v": v, "level": level}))
    return out


def _values(rule: Rule | None, value_range: tuple[float, float] | None) -> tuple[float, float, float, float]:
    """(normal, its jitter step, on the first rung, beyond the last rung) for a sensor's readings."""
    if rule is None:
        return 0.0, 0.0, 0.0, 0.0
    high, ladder = rule
    s, first, last = (1 if high else -1), ladder[0][1], ladder[-1][1]
    gap = abs(last - first) or abs(first) * 0.1 or 1.0
    lo, hi = value_range or (float("-inf"), float("inf"))
    below = min(gap, ((first - lo) if high else (hi - first)) / 2)  # how far normal is from the first rung
    on_first = (first + ladder[1][1]) / 2 if len(ladder) > 1 else first + s * gap / 2
    return first - s * below, -s * below * 0.02, on_first, last + s * gap / 2


def plan_records(config_dir: Path, readings: int, shape: str, now_ms: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of the ``hazwatch.readings`` records carrying ``readings`` readings, in the
    order and grouping of :func:`hazwatch.bench_ingest.plan_messages`; a sensor's readings one
    period apart, none later than ``now_ms``."""
    config = load_config(config_dir)
    rules = rule_table(config)
    sensors = {(s.id, x.id): x for s in config.sites for x in s.sensors}
    groups: list[tuple[str, list[str]]] = []
    for site, messages in plan_messages(config_dir, readings, shape, 0).items():
        for topic, payload in messages:
            items = orjson.loads(payload).get("readings")
            groups.append((site, [i["sensor"] for i in items] if items else [topic.split("/")[3]]))
    counts = Counter((site, name) for site, names in groups for name in names)
    start = now_ms - max(int(sensors[k].period_s * 1000) * (n - 1) for k, n in counts.items())
    values = {k: _values(rules[k[0]].get(k[1]), x.range) for k, x in sensors.items()}
    seen: dict[tuple[str, str], int] = {}
    out = []
    for site, names in groups:
        batch = Readings(site, cfg=config.sensor_fingerprint)
        for name in names:
            k = seen[site, name] = seen.get((site, name), -1) + 1
            normal, step, on_first, beyond = values[site, name]
            phase = k % CYCLE // EXCURSION  # 1: on the first rung, 2: beyond the last, else normal
            v = on_first if phase == 1 else beyond if phase == 2 else normal + step * (k % 7)
            batch.sensor.append(name)
            batch.ts.append(start + int(sensors[site, name].period_s * 1000) * k)
            batch.v.append(float(v))
            batch.q.append(0)
            batch.i.append(config.sensor_index(site, name))
        out.append((site.encode(), batch.encode()))
    return out


def _count(bootstrap: str, topic: str) -> int:
    """Records in ``topic``, read from the start until a poll finds no more (Tansu's end offsets
    can be stale, docs/ARCHITECTURE.md §15: they only tell where to read up to at least)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, client_id="bench-count")
    try:
        parts = all_partitions(consumer, [topic])
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end, total = consumer.end_offsets(parts), 0
        while True:
            got = sum(map(len, consumer.poll(timeout_ms=1000, max_records=10_000).values()))
            total += got
            if not got and all(consumer.position(tp) >= end[tp] for tp in parts):
                return total
    finally:
        consumer.close()


def _prefill(stack: EmbeddedStack, records: list[tuple[bytes, bytes]]) -> dict[int, int]:
    """Create the peers' topics, write the records (acks=all); partition -> its end offset."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    n, rf = load_config(example_dir()).settings.kafka.partitions[READINGS], stack.replication_factor
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="bench-setup")
    try:  # the faust peer's table changelog up front, as hazwatch's (config.topics.RULES_CHANGELOGS)
        admin.create_topics([NewTopic(WARNING_TOPICS["faust"], n, rf), NewTopic(WARNING_TOPICS["quix"], n, rf),
                             NewTopic("bench-faust-levels-changelog", n, rf,
                                      topic_configs={"cleanup.policy": "compact"})])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all", linger_ms=50,
                             batch_size=512 * 1024, client_id="bench-prefill")
    sent = [producer.send(READINGS, key=key, value=value) for key, value in records]
    producer.flush()
    producer.close()
    end: dict[int, int] = {}  # from the acknowledgements: Tansu's ListOffsets can be stale
    for meta in (f.get() for f in sent):  # raises if a record was not written
        end[meta.partition] = max(end.get(meta.partition, 0), meta.offset + 1)
    return end


def _contender(stack: EmbeddedStack, name: str, end: dict[int, int], readings: int,
               brokers: dict[str, int]) -> dict[str, Any]:
    """Start one contender, time it from ready until its committed offsets reach ``end``, stop it."""
    from kafka import KafkaAdminClient

    ready = stack.workdir / f"{name}.ready"
    if name == "hazwatch":
        proc = stack.hazwatch("rules", "rules", "--config", str(example_dir()),
                              env={"HAZWATCH_READY_FILE": str(ready),
                                   "HAZWATCH_RULES_COMMIT_INTERVAL_S": str(COMMIT_INTERVAL_S)})
    else:
        proc = stack.spawn(f"bench-{name}", [sys.executable, "-m", "hazwatch.bench_worker", name,
                                             stack.kafka_bootstrap, str(stack.workdir)])
    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="bench-committed")

    def done() -> bool:
        found = admin.list_group_offsets({GROUPS[name]: None}).get(GROUPS[name], {})
        committed = {tp.partition: m.offset for tp, m in found.items() if tp.topic == READINGS}
        return all(committed.get(p, -1) >= n for p, n in end.items() if n > 0)

    def cpu() -> dict[str, float]:
        return {name: cpu_s(proc.pid)} | {b: cpu_s(pid) for b, pid in brokers.items()}

    try:
        _wait(proc, ready.exists, 180, f"{name} ready")
        t0, cpu0 = time.monotonic(), cpu()
        _wait(proc, done, max(300.0, readings / 500), f"{name} done", poll_s=0.1)
        seconds, used = time.monotonic() - t0, {k: v - cpu0[k] for k, v in cpu().items()}
    finally:
        admin.close()
        proc.stop()  # a clean stop: its last warnings are flushed before they are counted
    return {"readings": readings, "records": sum(end.values()), "seconds": round(seconds, 3),
            "readings_per_s": round(readings / seconds), "warnings": _count(stack.kafka_bootstrap, WARNING_TOPICS[name]),
            "cpu_us_per_reading": {k: round(v / readings * 1e6, 2) for k, v in used.items()}}


def _wait(proc: Process, check: Any, timeout_s: float, what: str, poll_s: float = 0.05) -> None:
    """``wait_for`` that gives up as soon as the process exits, with its log tail."""
    wait_for(lambda: not proc.alive() or check(), timeout_s, what, poll_s)
    if not proc.alive():
        raise RuntimeError(f"{what}: {proc.name} exited:\n{proc.log_tail()}")


def bench_worker(*, readings: int = 100_000, shape: str = "single", kafka: str | None = None,
                 only: tuple[str, ...] = CONTENDERS, workdir: Path | None = None, log: Any = print) -> dict[str, Any]:
    """Run the benchmark (module docstring); the result as a JSON-able dict."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="hazwatch-bench-worker-"))
    with EmbeddedStack(workdir, kafka=kafka) as stack:
        log(f"Kafka {stack.kafka_kind} at {stack.kafka_bootstrap}; work directory {workdir}")
        records = plan_records(example_dir(), readings, shape, int(time.time() * 1000))
        end = _prefill(stack, records)
        log(f"{READINGS}: {readings:,} readings in {len(records):,} records ({shape})")
        brokers = {p.name: p.pid for p in stack.processes if p.name.startswith("kafka") and p.alive()}
        results = {}
        for name in only:
            results[name] = _contender(stack, name, end, readings, brokers)
            log(f"{name}: {results[name]['seconds']} s, {results[name]['readings_per_s']:,} readings/s")
    hw = results.get("hazwatch")
    ratios = {f"hazwatch/{peer}": {  # None: the peer's CPU was below one clock tick
        "readings_per_s": round(hw["readings_per_s"] / r["readings_per_s"], 2),
        "cpu_us_per_reading": round(hw["cpu_us_per_reading"]["hazwatch"] / r["cpu_us_per_reading"][peer], 2)
        if r["cpu_us_per_reading"][peer] else None} for peer, r in results.items() if hw and peer != "hazwatch"}
    return {"shape": shape, "kafka": stack.kafka_kind, "readings": readings, "records": len(records),
            "commit_interval_s": COMMIT_INTERVAL_S, "contenders": results, "ratios": ratios}


def _run_faust(bootstrap: str, workdir: Path) -> None:
    """The faust peer: one event at a time, the level per (site, sensor) in a Table."""
    import faust

    config = load_config(example_dir())
    rules, n = rule_table(config), config.settings.kafka.partitions[READINGS]
    app = faust.App(GROUPS["faust"], broker=[f"kafka://{b}" for b in bootstrap.split(",")], store="memory://",
                    topic_partitions=n, broker_session_timeout=6.0, broker_heartbeat_interval=1.0,
                    broker_rebalance_timeout=10.0, broker_commit_interval=COMMIT_INTERVAL_S, producer_acks=-1,
                    web_enabled=False, datadir=str(workdir / "faust-data"))
    readings = app.topic(READINGS, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    warnings = app.topic(WARNING_TOPICS["faust"], key_serializer="raw", value_serializer="raw")
    levels = app.Table("levels", default=str, partitions=n)

    def put(site: str, sensor: str, level: str) -> None:
        levels[f"{site}|{sensor}"] = level

    @app.agent(readings)
    async def evaluate(stream: faust.Stream) -> None:
        async for key, value in stream.items():
            for warning in _changes(value, rules, lambda site, sensor: levels[f"{site}|{sensor}"], put):
                await warnings.send(key=key, value=warning)

    @app.on_rebalance_complete.connect
    async def _ready(sender: object, **_kw: object) -> None:
        (workdir / "faust.ready").write_text(str(os.getpid()))

    faust.Worker(app, loglevel="warn", quiet=True).execute_from_commandline()


def _run_quix(bootstrap: str, workdir: Path) -> None:
    """The quixstreams peer: the same rule per record, the level per sensor in the key's State."""
    from quixstreams import Application
    from quixstreams.state import State

    rules = rule_table(load_config(example_dir()))

    class _App(Application):
        def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
            super()._on_assign(consumer, partitions)  # quixstreams has no public "assigned" callback
            if partitions:
                (workdir / "quix.ready").write_text(str(os.getpid()))

    app = _App(bootstrap, consumer_group=GROUPS["quix"], auto_offset_reset="earliest",
               commit_interval=COMMIT_INTERVAL_S, state_dir=str(workdir / "quix-state"), loglevel="WARNING")
    readings = app.topic(READINGS, key_deserializer="bytes", value_deserializer="bytes")
    # quixstreams derives its changelog's retention from the source topic's retention.ms, which
    # Tansu does not describe (KeyError): Kafka's default then
    readings.broker_config.extra_config.setdefault("retention.ms", str(7 * 86_400_000))
    warnings = app.topic(WARNING_TOPICS["quix"], key_serializer="bytes", value_serializer="bytes")

    def evaluate(value: bytes, state: State) -> list[bytes]:  # the state is the record key's (site's)
        return _changes(value, rules, lambda _site, sensor: state.get(sensor, ""),
                        lambda _site, sensor, level: state.set(sensor, level))

    app.dataframe(readings).apply(evaluate, stateful=True, expand=True).to_topic(warnings)
    app.run()


def worker_command(
    readings: Annotated[int, typer.Option(help="Readings in the pre-filled topic")] = 100_000,
    shape: Annotated[str, typer.Option(help="single (one reading per record) or batch (50 per record)")] = "single",
    kafka: Annotated[str | None, typer.Option(help="apache or tansu (default: HAZWATCH_KAFKA, else tansu)")] = None,
    only: Annotated[str, typer.Option(help="Contenders, comma-separated: hazwatch,faust,quix")] = ",".join(CONTENDERS),
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """The rules stage alone on a pre-filled readings topic: hazwatch, faust and quixstreams."""
    from hazwatch.bench import machine_info

    if shape not in ("single", "batch"):
        raise typer.BadParameter("single or batch", param_hint="--shape")
    names = tuple(n.strip() for n in only.split(",") if n.strip())
    if not names or set(names) - set(CONTENDERS):
        raise typer.BadParameter(f"a comma-separated subset of {','.join(CONTENDERS)}", param_hint="--only")
    if "quix" in names and importlib.util.find_spec("quixstreams") is None:
        raise typer.BadParameter(f"quixstreams is not installed: {QUIX_INSTALL}", param_hint="--only")
    err = Console(stderr=True)
    result = bench_worker(readings=readings, shape=shape, kafka=kafka, only=names,
                          log=lambda msg: err.print(f"[dim]{msg}[/]"))
    result["machine"] = machine_info()
    if json:
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    runs = result["contenders"]
    table = Table(title=f"hazwatch bench worker ({result['shape']}, Kafka {result['kafka']}, "
                        f"commits every {result['commit_interval_s']} s)")
    table.add_column("measure")
    for name in runs:
        table.add_column(name, justify="right")
    for key in ("readings", "records", "seconds", "readings_per_s", "warnings"):
        table.add_row(key, *(f"{r[key]:,}" for r in runs.values()))
    for proc in dict.fromkeys(k for r in runs.values() for k in r["cpu_us_per_reading"] if k not in CONTENDERS):
        table.add_row(f"CPU µs/reading: {proc}", *(f"{r['cpu_us_per_reading'][proc]:,}" for r in runs.values()))
    table.add_row("CPU µs/reading: contender", *(f"{r['cpu_us_per_reading'][n]:,}" for n, r in runs.items()))
    for pair, ratio in result["ratios"].items():  # in the peer's column
        table.add_row(f"{pair}: readings/s, CPU/reading", *(
            f"{ratio['readings_per_s']}x, {ratio['cpu_us_per_reading']}x" if n == pair.split("/")[1] else ""
            for n in runs))
    console = Console()
    if not console.is_terminal:  # a file or a pipe: wide enough for the table
        console = Console(width=120)
    console.print(table)


_PEERS = {"faust": _run_faust, "quix": _run_quix}

if __name__ == "__main__":  # a peer's process: python -m hazwatch.bench_worker faust|quix BOOTSTRAP WORKDIR
    _PEERS[sys.argv[1]](sys.argv[2], Path(sys.argv[3]))
