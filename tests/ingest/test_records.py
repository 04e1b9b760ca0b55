"""Ingest turns a micro-batch of messages into Kafka records: one readings record per site (up to
MERGE_MAX readings, in arrival order), plus presence events and dead letters."""

from __future__ import annotations

import time

import orjson
import pytest

import ingest.service
from config import example_dir, load_config
from config.topics import DEADLETTER, HEALTH, READINGS
from ingest.inbox import Arrival
from ingest.mqtt_client import Received
from ingest.service import IngestService

CONFIG = load_config(example_dir())
NOW = int(time.time() * 1000)


def reading(site: str, sensor: str, ts: int) -> Received:
    return Received(f"hw/v1/{site}/{sensor}/reading".encode(), orjson.dumps({"ts": ts, "v": 1.0}), 1, 1)


def arrivals(messages: list[Received]) -> list[Arrival]:
    """The messages as two read passes of paho's thread."""
    return [Arrival(1, NOW, messages[:3]), Arrival(1, NOW, messages[3:])]


def readings_of(records: list) -> list[tuple[str, list[tuple[str, int]]]]:
    out = []
    for topic, key, value in records:
        if topic == READINGS:
            m = orjson.loads(value)
            assert key == m["site"].encode()
            out.append((m["site"], list(zip(m["sensor"], m["ts"], strict=True))))
    return out


def test_a_sites_readings_of_one_micro_batch_become_one_record() -> None:
    messages = [reading("CH-001", "GT-101", NOW - 5000 + n) for n in range(5)]
    messages.insert(2, reading("TD-001", "PZ-01", NOW - 100))
    messages.insert(4, Received(b"hw/v1/CH-001/GT-101/reading", b"{not json", 1, 1))
    messages.append(Received(b"hw/v1/CH-001/status", b"online", 1, 1))
    messages.append(reading("TD-001", "PZ-01", NOW - 99))

    records = IngestService(CONFIG).records(arrivals(messages))

    assert readings_of(records) == [("CH-001", [("GT-101", NOW - 5000 + n) for n in range(5)]),
                                    ("TD-001", [("PZ-01", NOW - 100), ("PZ-01", NOW - 99)])]
    assert sorted(t for t, _k, _v in records if t != READINGS) == [DEADLETTER, HEALTH]


def test_a_record_holds_at_most_merge_max_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest.service, "MERGE_MAX", 3)
    messages = [reading("CH-001", "GT-101", NOW - 5000 + n) for n in range(7)]
    sizes = [len(r) for _site, r in readings_of(IngestService(CONFIG).records(arrivals(messages)))]
    assert sizes == [3, 3, 1]
