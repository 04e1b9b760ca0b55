"""Messages that MQTT delivers again (broker restart, device resend) reach Kafka once."""

from __future__ import annotations

import time

import orjson
from hypothesis import given
from hypothesis import strategies as st

from config import example_dir, load_config
from config.topics import HEALTH, READINGS
from ingest.dedup import RecentMessages, message_key
from ingest.service import IngestService

CONFIG = load_config(example_dir())


def test_a_message_is_new_once_then_seen() -> None:
    recent = RecentMessages(capacity=3)
    key = message_key(b"hw/v1/CH-001/GT-101/reading", b'{"ts":1,"v":1}')
    assert not recent.seen_before(key)
    assert recent.seen_before(key)
    assert not recent.seen_before(message_key(b"hw/v1/CH-001/GT-101/reading", b'{"ts":2,"v":1}'))
    assert not recent.seen_before(message_key(b"hw/v1/CH-001/GT-102/reading", b'{"ts":1,"v":1}'))


@given(st.integers(min_value=1, max_value=50), st.lists(st.integers(min_value=0, max_value=200), max_size=400))
def test_the_last_capacity_messages_are_remembered_and_no_more_than_twice_that(capacity: int,
                                                                               offered: list[int]) -> None:
    recent = RecentMessages(capacity)
    history: list[int] = []  # distinct messages in the order they were first remembered
    for n in offered:
        seen = recent.seen_before(message_key(b"t", str(n).encode()))
        if n in history[-capacity:]:
            assert seen, "one of the last `capacity` new messages was forgotten"
        if not seen:
            history.append(n)
        assert len(recent) <= 2 * capacity


def test_a_redelivered_reading_or_batch_becomes_no_record() -> None:
    service = IngestService(CONFIG)
    now = int(time.time() * 1000)
    reading = ("hw/v1/CH-001/GT-101/reading", orjson.dumps({"ts": now, "v": 1.5}))
    batch = ("hw/v1/CH-001/batch", orjson.dumps({"readings": [{"sensor": "GT-101", "ts": now, "v": 2.0}]}))
    for message in (reading, batch):
        assert [topic for topic, _, _ in service.handle(*message)] == [READINGS]
        assert service.handle(*message) == []  # e.g. the same message after a broker restart
    assert service.redelivered == 2 and service.produced == 2


def test_presence_repeats_and_is_never_dropped() -> None:
    service = IngestService(CONFIG)
    for payload in (b"online", b"offline", b"online", b"online"):
        assert [topic for topic, _, _ in service.handle("hw/v1/CH-001/status", payload)] == [HEALTH]
    assert service.redelivered == 0
