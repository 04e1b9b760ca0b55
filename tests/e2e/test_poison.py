"""Whatever arrives, ingest keeps moving: a flood of bad messages (a 1 MB and a 4.5 MB payload, a
batch of 5,000 bad items, broken JSON, unknown ids) mixed with valid readings, on real brokers.
Every valid reading reaches Kafka exactly once, every bad message is dead-lettered once with its
reason and in bounded size, and ingest's memory stays bounded."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson

from config.topics import DEADLETTER
from tests.e2e.checks import readings_in_kafka
from tests.e2e.conftest import Pipeline, TopicReader, wait_until

DEADLETTER_BOUND = 8192  # bytes a dead letter may take, whatever arrived
INGEST_PEAK_BOUND = 600 * 1024 * 1024  # bytes of resident memory


def bad_messages(now: int, n: int) -> list[tuple[str, bytes, str]]:
    """(topic, payload, a word its dead letter's reason must contain); ``n`` makes each payload
    differ from the other rounds' (ingest takes a repeated identical message for a redelivery)."""
    pad = {"ts": now + n, "v": 1}
    return [
        ("hw/v1/CH-001/GT-101/reading", orjson.dumps({**pad, "pad": "A" * 1_048_576}), "oversize"),
        ("hw/v1/CH-001/GT-101/reading", orjson.dumps({**pad, "pad": "A" * 4_500_000}), "oversize"),
        ("hw/v1/CH-001/batch", orjson.dumps({"readings": [{"sensor": "NOPE-9", "ts": now + n, "v": i}
                                                          for i in range(5000)]}), "unknown sensor"),
        ("hw/v1/CH-001/GT-101/reading", b"{not json %d" % n, "not JSON"),
        ("hw/v1/XX-404/GT-101/reading", orjson.dumps(pad), "unknown site"),
    ]


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_a_flood_of_poison_messages_loses_and_doubles_nothing(pipeline: Pipeline) -> None:
    deadletter = TopicReader(pipeline.stack.kafka_bootstrap, DEADLETTER)
    try:
        now = int(time.time() * 1000)
        valid: set[tuple[str, str, int]] = set()
        messages: list[tuple[str, bytes]] = []
        words: Counter[str] = Counter()
        for i in range(400):  # normal gas readings, every 5th message a bad one, three rounds
            ts = now - 400_000 + i * 1000
            sensor = ("GT-101", "GT-102")[i % 2]
            messages.append((f"hw/v1/CH-001/{sensor}/reading", orjson.dumps({"ts": ts, "v": 2.0})))
            valid.add(("CH-001", sensor, ts))
            if i % 5 == 4:
                kinds = bad_messages(now, i)
                topic, payload, word = kinds[(i // 5) % len(kinds)]
                messages.append((topic, payload))
                words[word] += 1
        n_bad = sum(words.values())
        pipeline.publish(messages)

        wait_until(lambda: len(deadletter.poll()) >= n_bad, 120, f"{n_bad} dead letters")
        wait_until(lambda: set(readings_in_kafka(pipeline.stack.kafka_bootstrap)[0]) >= valid, 120,
                   "every valid reading in Kafka")
        stored, _ = readings_in_kafka(pipeline.stack.kafka_bootstrap)
        assert set(stored) == valid and max(stored.values()) == 1, "a valid reading lost or stored twice"

        assert len(deadletter.poll()) == n_bad, "a bad message dead-lettered twice"
        for word, count in words.items():
            assert sum(word in d["reason"] for d in deadletter.records) == count, word
        sizes = [len(orjson.dumps(d)) for d in deadletter.records]
        assert max(sizes) < DEADLETTER_BOUND, max(sizes)
        assert peak_rss(pipeline.procs["ingest"].pid) < INGEST_PEAK_BOUND
    finally:
        deadletter.close()
