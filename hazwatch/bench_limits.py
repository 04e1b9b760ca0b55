"""The physical limits under ``hazwatch bench pipeline``, measured in the same run on this machine.

- **MQTT**: the embedded stack's Mosquitto (shipped settings) and one paho subscriber on ``hw/v1/#``
  with a persistent session, at QoS 1 (as ingest subscribes) and at QoS 0, fed by the benchmark's
  load process (:func:`hazwatch.bench_mqtt.bench_mqtt`).
- **Kafka**: one kafka-python producer writing single-reading records of ingest's format to a fresh
  topic (``acks=all``, ``linger_ms`` 5, as ingest), then one consumer reading them back from the
  start. Readings/s and CPU µs per record of the client and of the broker.
- **Peers**: the rules stage alone on a pre-filled topic, hazwatch against faust per event and
  quixstreams (:func:`hazwatch.bench_worker.bench_worker`), single readings and 50-reading records,
  with the ratios.

Each part runs on a stack of its own, after the pipeline's steps, so that nothing else loads the
cores meanwhile.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from hazwatch.bench_ingest import cpu_s
from hazwatch.kafka_admin import all_partitions
from hazwatch.runtime import EmbeddedStack

__all__ = ["bench_kafka", "bench_limits"]

TOPIC = "bench.raw"


def bench_kafka(stack: EmbeddedStack, records: int) -> dict[str, Any]:
    """Produce ``records`` single-reading records to a fresh topic and consume them back."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap, client_id="bench-raw-setup")
    try:
        admin.create_topics([NewTopic(TOPIC, 6, stack.replication_factor)])
    finally:
        admin.close()
    broker = next(p.pid for p in stack.processes if p.name.startswith("kafka") and p.alive())
    now = int(time.time() * 1000)
    values = [orjson.dumps({"site": f"S{n % 1000:04d}", "sensor": ["GT-101"], "ts": [now + n], "v": [1.0],
                            "q": [0], "i": [n % 10_000], "cfg": "bench"}) for n in range(records)]
    keys = [f"S{n % 1000:04d}".encode() for n in range(records)]
    producer = KafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all", linger_ms=5,
                             client_id="bench-raw-producer")
    cpu0, broker0, t0 = time.process_time(), cpu_s(broker), time.monotonic()
    futures = [producer.send(TOPIC, key=k, value=v) for k, v in zip(keys, values, strict=True)]
    producer.flush()
    for f in futures:
        f.get()  # raises if a record was not written
    produce_s, produce_cpu, produce_broker = time.monotonic() - t0, time.process_time() - cpu0, cpu_s(broker) - broker0
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, enable_auto_commit=False,
                             client_id="bench-raw-consumer", max_poll_records=10_000)
    try:
        parts = all_partitions(consumer, [TOPIC])
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        got = 0
        cpu0, broker0, t0 = time.process_time(), cpu_s(broker), time.monotonic()
        while got < records:
            got += sum(map(len, consumer.poll(timeout_ms=1000).values()))
        consume_s, consume_cpu = time.monotonic() - t0, time.process_time() - cpu0
        consume_broker = cpu_s(broker) - broker0
    finally:
        consumer.close()

    def us(seconds: float) -> float:
        return round(seconds / records * 1e6, 1)

    return {"records": records,
            "produce": {"per_s": round(records / produce_s), "client_cpu_us": us(produce_cpu),
                        "broker_cpu_us": us(produce_broker)},
            "consume": {"per_s": round(records / consume_s), "client_cpu_us": us(consume_cpu),
                        "broker_cpu_us": us(consume_broker)}}


def bench_limits(*, kafka: str | None, log: Any = print, mqtt_readings: int = 50_000,
                 kafka_records: int = 200_000, worker_readings: int = 100_000) -> dict[str, Any]:
    """MQTT, Kafka and the peers, one after the other (module docstring)."""
    from hazwatch.bench_mqtt import bench_mqtt
    from hazwatch.bench_worker import bench_worker

    base = Path(tempfile.mkdtemp(prefix="hazwatch-bench-limits-"))
    out: dict[str, Any] = {"mqtt": {}}
    for qos in (1, 0):
        log(f"limits: Mosquitto -> one paho subscriber at QoS {qos}")
        [out["mqtt"][f"qos{qos}"]] = bench_mqtt(readings=mqtt_readings, modes=["shipped"], qos=qos, loader="mosquitto_pub",
                                                 workdir=base / f"mqtt-qos{qos}", log=log)
    log("limits: raw Kafka produce and consume")
    with EmbeddedStack(base / "kafka", kafka=kafka) as stack:
        out["kafka"] = bench_kafka(stack, kafka_records)
    out["peers"] = {}
    for shape, readings in (("single", worker_readings), ("batch", worker_readings * 5)):
        log(f"limits: the rules stage against faust and quixstreams ({shape})")
        out["peers"][shape] = bench_worker(readings=readings, shape=shape, kafka=kafka, workdir=base / f"worker-{shape}",
                                           log=log)
    return out
