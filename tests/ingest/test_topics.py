"""Ingest reads all of hw/v1/#: a message on a topic outside the contract is dead-lettered with its
reason and counted, never lost silently; hazwatch's own broadcasts are skipped."""

from __future__ import annotations

import time

import orjson
import pytest
from prometheus_client import REGISTRY

from config import example_dir, load_config
from config.topics import DEADLETTER, READINGS
from ingest.service import IngestService
from ingest.validate import on_contract

CONFIG = load_config(example_dir())
READING = orjson.dumps({"ts": int(time.time() * 1000), "v": 1.0})


@pytest.mark.parametrize("topic", [
    "hw/v1/CH/001/GT-101/reading",  # a "/" in the site id
    "hw/v1/CH-001/GT/101/reading",  # ... in the sensor id
    "hw/v1/CH-001/GT-101/readings",  # a misspelt kind
    "hw/v1/CH-001/GT-101",
    "hw/v1/CH-001/batch/extra",
])
def test_a_topic_outside_the_contract_is_dead_lettered_and_counted(topic: str) -> None:
    service = IngestService(CONFIG)
    before = REGISTRY.get_sample_value("hazwatch_ingest_off_contract_total") or 0.0
    assert not on_contract(topic)

    [(kafka_topic, _key, value)] = service.handle(topic, READING)

    assert kafka_topic == DEADLETTER
    letter = orjson.loads(value)
    assert letter["topic"] == topic and "topic" in str(letter["reasons"])
    assert service.off_contract == 1
    assert REGISTRY.get_sample_value("hazwatch_ingest_off_contract_total") == before + 1


def test_contract_topics_and_broadcasts_are_not_counted() -> None:
    service = IngestService(CONFIG)
    [(topic, key, _value)] = service.handle("hw/v1/CH-001/GT-101/reading", READING)
    assert (topic, key) == (READINGS, b"CH-001")
    assert service.handle("hw/v1/broadcast/Z-LINGANG-EAST/cap", b"<alert/>") == []
    assert service.off_contract == 0
    assert all(on_contract(t) for t in ("hw/v1/CH-001/GT-101/reading", "hw/v1/CH-001/batch",
                                        "hw/v1/CH-001/status"))
