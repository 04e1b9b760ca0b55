"""``hazwatch bench pipeline``: MQTT -> ingest -> Kafka -> rules -> alerts -> SMS, under paced load.

The embedded stack and every service run as in the demo (fake Twilio, rules, alerts, ingest), on
a configuration written for the run (:func:`write_config`): the example sites, plus ``sites`` load
sites of ``sensors`` sensors each that publish normal values. A load process
(:mod:`hazwatch.bench_load`) publishes at QoS 1, one device connection per load site, step by
step: single readings at rising rates, gateway batches of 50 at rising rates, then one overload
step at twice the highest sustained single-reading rate. Meanwhile a probe
(:mod:`hazwatch.bench_probe`) measures reading -> warning and reading -> SMS request on a site of
its own.

Per step it reports: readings offered, published and acknowledged by Mosquitto, reaching Kafka
(read back and counted by (site, sensor, ts)), lost (acknowledged but not in Kafka) and
duplicated; the rules worker's lag (records of ``hazwatch.readings`` its group has not committed:
max during the step, and the seconds until it was 0 after the step); the most messages the MQTT
broker held and the messages it dropped (its ``$SYS`` counts, every 10 s, through
:class:`ingest.broker_watch.BrokerWatch`); sustained or not; CPU µs per reading and RSS of every
process; probe latencies (n, p50, p99, max).

A step is *sustained* when the load published at least 95 % of the offered rate, Mosquitto
acknowledged every message, and ingest and the rules worker were through the step's readings
within ``SETTLE_S`` of its end (the rules worker commits its offsets every second here, after its
state snapshot: ``HAZWATCH_RULES_COMMIT_INTERVAL_S=1``).
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml
from kafka import KafkaAdminClient, KafkaConsumer

from config import example_dir
from config.mqtt import MqttSettings
from config.topics import READINGS
from hazwatch.bench_ingest import BATCH, cpu_s, iter_readings
from hazwatch.bench_load import Step, run_load
from hazwatch.bench_probe import Probe, Sample, percentiles
from hazwatch.demo import start_services
from hazwatch.kafka_admin import all_partitions
from hazwatch.runtime import EmbeddedStack, wait_for
from ingest.broker_watch import BrokerWatch

__all__ = ["bench_pipeline", "plan_step", "ts_span", "write_config"]

PROBE = ("CH-001", "GT-101", 60.0, 0.0)  # site, sensor, red value, normal value
SETTLE_S = 5.0
LOSS_TOPIC = "hw/v1/broadcast/bench/cap"  # the ACL lets no device publish here: acknowledged and dropped


def write_config(out: Path, *, sites: int, sensors: int, ingest_processes: int = 1) -> list[str]:
    """The benchmark's configuration in ``out``: the example's files, with load sites ``LD-0001``...
    (copies of the probe site, ``sensors`` copies of its probe sensor each), no offline checks
    that silence between steps would trip, and notification settings that let every probe's red
    through at once to the operators only (no grouping wait, no per-recipient cap). Returns the load
    site ids."""
    shutil.copytree(example_dir(), out, dirs_exist_ok=True)
    settings = yaml.safe_load((out / "hazwatch.yaml").read_text())
    settings["notify"]["group_wait_s"] = 0
    # the probe's reds reach the operators only: a red every second texting every resident and
    # officer of the site, with CAP broadcasts and their audio, would load the two cores more
    # than the readings do (fake Twilio and alerts took about 0.8 of a core at 2,000 readings/s)
    settings["routing"]["rules"] = [{"name": "centre", "audiences": ["operators"]}]
    settings["notify"]["rate_limit"]["max_per_recipient"] = 1_000_000
    if ingest_processes > 1:
        settings["ingest"]["shared_group"] = "hazwatch-ingest"
    (out / "hazwatch.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True, sort_keys=False))
    doc = yaml.safe_load((out / "sites.yaml").read_text())
    probe_site, probe_sensor = PROBE[0], PROBE[1]
    for site in doc["sites"]:
        for sensor in site["sensors"]:
            sensor["period_s"] = 86_400  # no offline faults from the silence between steps
            if (site["id"], sensor["id"]) == (probe_site, probe_sensor):
                for rule in sensor.get("thresholds", []):
                    rule["min_duration_s"] = 0  # one red reading raises red
    template = next(s for s in doc["sites"] if s["id"] == probe_site)
    template_sensor = next(x for x in template["sensors"] if x["id"] == probe_sensor)
    ids = [f"LD-{k:04d}" for k in range(1, sites + 1)]
    for site_id in ids:
        site = {k: v for k, v in template.items() if k != "sensors"} | {"id": site_id, "name": f"负载 {site_id}",
                                                                      "name_en": f"Load {site_id}"}
        site["sensors"] = [template_sensor | {"id": f"S{j:02d}"} for j in range(1, sensors + 1)]
        doc["sites"].append(site)
    (out / "sites.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return ids


def plan_step(name: str, shape: str, readings: int, rate: float, sites: list[str], sensors: int,
              start_ms: int) -> Step:
    """``readings`` normal readings of the load sites, every sensor in turn, offered at ``rate``
    readings/s as single readings or batches of 50 (a batch: one site's). A sensor's k-th reading
    of the step is stamped ``start_ms + k``: every reading distinct, none late."""
    n_sensors = len(sites) * sensors
    messages: list[tuple[str, str, bytes]] = []
    if shape == "single":
        for n in range(readings):
            site, sensor = sites[(n // sensors) % len(sites)], f"S{n % sensors + 1:02d}"
            messages.append((site, f"hw/v1/{site}/{sensor}/reading",
                             orjson.dumps({"ts": start_ms + n // n_sensors, "v": 1.0})))
        return Step(name, rate, messages)
    for m in range(-(-readings // BATCH)):
        site, first = sites[m % len(sites)], (m // len(sites)) * BATCH
        items = [{"sensor": f"S{j % sensors + 1:02d}", "ts": start_ms + j // sensors, "v": 1.0}
                 for j in range(first, first + min(BATCH, readings - m * BATCH))]
        messages.append((site, f"hw/v1/{site}/batch", orjson.dumps({"readings": items})))
    return Step(name, rate / BATCH, messages)


def ts_span(readings: int, n_sensors: int) -> int:
    """How many milliseconds of event time a step of ``readings`` stamps (:func:`plan_step`)."""
    return readings // n_sensors + BATCH + 1


def _count(bootstrap: str, ts_ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """(readings, distinct (site, sensor, ts)) of the load sites in ``hazwatch.readings``, per ts range."""
    totals = [0] * len(ts_ranges)
    seen: list[set[tuple[str, str, int]]] = [set() for _ in ts_ranges]
    for site, sensor, ts in iter_readings(bootstrap):
        if not site.startswith("LD-"):
            continue
        for i, (lo, hi) in enumerate(ts_ranges):
            if lo <= ts < hi:
                totals[i] += 1
                seen[i].add((site, sensor, ts))
                break
    return [(t, len(s)) for t, s in zip(totals, seen, strict=True)]


class _Lag:
    """Records of ``hazwatch.readings`` that the rules worker's group has not committed."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-lag")
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-lag")
        self.parts = all_partitions(self.consumer, [READINGS])

    def end(self) -> int:
        return sum(self.consumer.end_offsets(self.parts).values())

    def rules(self) -> int:
        committed = self.admin.list_group_offsets({"hazwatch-rules": None}).get("hazwatch-rules", {})
        end = self.consumer.end_offsets(self.parts)
        # at least 0: Tansu's listed end offsets can lag behind what was committed (ARCHITECTURE §15)
        return sum(max(0, end[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0))
                   for tp in self.parts)

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def bench_pipeline(*, single_rates: list[int], batch_rates: list[int], step_s: float = 20.0,
                   overload_s: float = 30.0, overload_rate: int = 0, sites: int = 1000, sensors: int = 10, ingest_processes: int = 1,
                   kafka: str | None = None, workdir: Path | None = None, inject_loss: int = 0,
                   log: Any = print) -> dict[str, Any]:
    """Run the benchmark (module docstring); ``overload_rate``: the overload step's, instead of
    twice the best sustained single rate; ``inject_loss`` single readings of the first step go
    to a topic the broker acknowledges and drops, to prove the loss count."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="hazwatch-bench-pipeline-"))
    config_dir = workdir / "config"
    load_sites = write_config(config_dir, sites=sites, sensors=sensors, ingest_processes=ingest_processes)
    with EmbeddedStack(workdir / "stack", kafka=kafka, devices=[PROBE[0], *load_sites]) as stack:
        stack.extra_env["HAZWATCH_RULES_COMMIT_INTERVAL_S"] = "1.0"
        procs = start_services(stack, config_dir)
        for k in range(2, ingest_processes + 1):
            ready = stack.workdir / f"ingest-{k}.ready"
            procs[f"ingest-{k}"] = stack.hazwatch(f"ingest-{k}", "ingest", "--config", str(config_dir),
                                                   "--client-id", f"hazwatch-ingest-{k}",
                                                   env={"HAZWATCH_READY_FILE": str(ready)})
            wait_for(ready.exists, 120, f"ingest-{k} ready")
        watched = {n: p.popen.pid for n, p in procs.items() if p.popen is not None}
        watched |= {p.name: p.popen.pid for p in stack.processes
                    if p.popen is not None and (p.name == "mqtt-broker" or p.name.startswith("kafka"))}
        twilio = f"http://127.0.0.1:{_twilio_port(procs)}"
        probe = Probe(bootstrap=stack.kafka_bootstrap, mqtt_port=stack.mqtt_port,
                      login=stack.mqtt_login(PROBE[0]) or ("", ""), twilio_url=twilio, site=PROBE[0],
                      sensor=PROBE[1], red=PROBE[2], normal=PROBE[3])
        probe.start()
        lag = _Lag(stack.kafka_bootstrap)
        broker = BrokerWatch(MqttSettings(url=f"mqtt://127.0.0.1:{stack.mqtt_port}", username="hazwatch-ingest",
                                          password=stack.mqtt_passwords.get("hazwatch-ingest")),
                             client_id="bench-broker-watch")  # what the broker holds and drops, per step
        broker.start()
        start_ms = int(time.time() * 1000) - 3_600_000
        plan = [("single", r) for r in single_rates] + [("batch", r) for r in batch_rates]
        results: list[dict[str, Any]] = []
        ctx = mp.get_context("fork")
        try:
            for i, (shape, rate) in enumerate(plan):
                results.append(_run_step(ctx, stack, f"{shape} {rate:,}/s", shape, rate, step_s, load_sites,
                                         sensors, start_ms, watched, lag, probe, inject_loss if i == 0 else 0, log,
                                         broker=broker))
                start_ms += ts_span(int(rate * step_s), len(load_sites) * sensors)
            sustained = [r["offered_per_s"] for r in results if r["shape"] == "single" and r["sustained"]]
            rate = overload_rate or 2 * max(sustained, default=0)
            if overload_s > 0 and rate:
                results.append(_run_step(ctx, stack, f"overload single {rate:,}/s", "single", rate, overload_s,
                                         load_sites, sensors, start_ms, watched, lag, probe, 0, log,
                                         settle_s=600.0, broker=broker))
        finally:
            probe.stop()
            lag.close()
            broker.stop()
        counts = _count(stack.kafka_bootstrap, [r.pop("_ts") for r in results])
    for r, (total, distinct) in zip(results, counts, strict=True):
        acked = min(r["readings"], r.pop("_acked_readings"))
        r |= {"in_kafka": total, "lost": max(0, acked - distinct), "duplicated": total - distinct}
    return {"kafka": stack.kafka_kind, "sites": sites, "sensors_per_site": sensors,
            "ingest_processes": ingest_processes, "steps": results,
            "probe_errors": repr(probe.error) if probe.error else None}


def _twilio_port(procs: dict[str, Any]) -> str:
    argv = procs["fake-twilio"].argv
    return argv[argv.index("--port") + 1]


def _slowest(samples: list[Sample]) -> dict[str, float] | None:
    """Where the slowest probe's time went (ms after its MQTT publish): its reading produced to
    Kafka by ingest, its warning decided by the rules worker, produced to Kafka, seen by the probe."""
    timed = [s for s in samples if s.warning_ms is not None]
    if not timed:
        return None
    worst = max(timed, key=lambda s: s.warning_ms or 0.0)
    return {"ingested": round(worst.ingested_ms) if worst.ingested_ms is not None else None,
            "decided": round(worst.decided_ms or 0.0), "produced": round(worst.produced_ms or 0.0),
            "seen": round(worst.warning_ms or 0.0)}


def _run_step(ctx: Any, stack: EmbeddedStack, name: str, shape: str, rate: int, seconds: float,
              load_sites: list[str], sensors: int, start_ms: int, watched: dict[str, int], lag: _Lag,
              probe: Probe, inject_loss: int, log: Any, settle_s: float = 120.0,
              broker: BrokerWatch | None = None) -> dict[str, Any]:
    readings = int(rate * seconds)
    step = plan_step(name, shape, readings, rate, load_sites, sensors, start_ms)
    if inject_loss:
        step.messages[:inject_loss] = [(s, LOSS_TOPIC, p) for s, _t, p in step.messages[:inject_loss]]  # type: ignore[index]
    go, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    load = ctx.Process(target=run_load, args=(stack.mqtt_port, stack.mqtt_passwords, [step], go, ready, out))
    load.start()
    wait_for(lambda: ready.is_set() or not load.is_alive(), 600, "the load encoded")
    if not load.is_alive():
        raise RuntimeError(f"the load process failed (exit code {load.exitcode})")
    log(f"{name}: {readings:,} readings in {len(step.messages):,} messages over {seconds:g} s")
    cpu0 = {n: cpu_s(pid) for n, pid in watched.items()}
    t0, wall0 = time.monotonic(), time.time()
    dropped0 = broker.drops_seen if broker else 0
    go.set()
    max_lag, published, max_stored = 0, None, 0
    while published is None:
        max_lag = max(max_lag, lag.rules())
        max_stored = max(max_stored, (broker.stored or 0) if broker else 0)
        if not out.empty():
            published = out.get()
        elif not load.is_alive() and out.empty():
            raise RuntimeError(f"the load process failed (exit code {load.exitcode})")
        else:
            time.sleep(0.5)
    load.join(30)
    probe.pause()  # its readings would keep the topic growing
    end_t = time.monotonic()
    stable_since, last_end = time.monotonic(), lag.end()
    while time.monotonic() - end_t < settle_s:  # ingest done (the topic stopped growing), rules caught up
        time.sleep(0.25)
        now_end = lag.end()
        if now_end != last_end:
            stable_since, last_end = time.monotonic(), now_end
        current = lag.rules()
        max_lag = max(max_lag, current)
        max_stored = max(max_stored, (broker.stored or 0) if broker else 0)
        if current == 0 and time.monotonic() - stable_since >= 1.0:
            break
    drained_s = time.monotonic() - t0 - published["publish_s"]
    probe.resume()
    cpu = {n: cpu_s(pid) - cpu0[n] for n, pid in watched.items()} | {"load": published["cpu_s"]}
    per = 1 if shape == "single" else BATCH
    offered = readings / seconds
    published_rate = readings / max(published["publish_s"], 1e-9)
    samples = probe.between(wall0, time.time())
    result = {
        "step": name, "shape": shape, "offered_per_s": rate, "readings": readings,
        "published_per_s": round(published_rate), "acknowledged": published["acknowledged"] * per,
        "max_rules_lag_records": max_lag, "broker_stored_max": max_stored,
        "broker_dropped": (broker.drops_seen - dropped0) if broker else None, "drained_after_s": round(drained_s, 1),
        "sustained": published_rate >= 0.95 * offered and published["acknowledged"] == published["messages"]
        and drained_s <= SETTLE_S + 1.0,
        "cpu_us_per_reading": {n: round(v / readings * 1e6, 1) for n, v in cpu.items()},
        "hazwatch_cpu_us_per_reading": round(sum(v for n, v in cpu.items() if n.split("-")[0] in
                                                 ("ingest", "rules", "alerts")) / readings * 1e6, 1),
        "rss_mb": {n: _rss_mb(pid) for n, pid in watched.items()},
        "warning_ms": percentiles([s.warning_ms for s in samples if s.warning_ms is not None]),
        "sms_ms": percentiles([s.sms_ms for s in samples if s.sms_ms is not None]),
        "probes": len(samples),
        "slowest_probe_ms": _slowest(samples),
        "_ts": (start_ms, start_ms + ts_span(readings, len(load_sites) * sensors)),
        "_acked_readings": published["acknowledged"] * per,
    }
    log(f"  published {result['published_per_s']:,}/s, rules lag max {max_lag:,} records, drained "
        f"{result['drained_after_s']} s after the load; warning p99 {result['warning_ms']['p99']} ms")
    return result
