"""Ingest's dead letters: one per message, bounded in size, saying what was wrong."""

from __future__ import annotations

import hashlib
import time

import orjson

from config import example_dir, load_config
from ingest.deadletter import FIRST_REASONS, PREFIX_BYTES, WHOLE_PAYLOAD_BYTES, deadletter_record
from ingest.validate import Reject, validate_message

CONFIG = load_config(example_dir())
BOUND = 8192  # bytes: what one dead letter may take, whatever arrived


def test_a_small_payload_is_kept_whole() -> None:
    rec = orjson.loads(deadletter_record("hw/v1/CH-001/GT-101/reading", b"{not json", [Reject("not JSON")], 1))
    assert rec["payload"] == "{not json" and rec["reason"] == "not JSON" and rec["rejected"] == 1
    assert rec["bytes"] == 9 and rec["sha256"] == hashlib.sha256(b"{not json").hexdigest()


def test_a_large_payload_is_kept_as_its_size_digest_and_prefix() -> None:
    payload = orjson.dumps({"ts": 1, "v": 1, "pad": "A" * 4_500_000})
    value = deadletter_record("hw/v1/CH-001/GT-101/reading", payload, [Reject("payload too large")], 1)
    rec = orjson.loads(value)
    assert len(value) < BOUND
    assert "payload" not in rec and rec["payload_prefix"] == payload[:PREFIX_BYTES].decode()
    assert rec["bytes"] == len(payload) and rec["sha256"] == hashlib.sha256(payload).hexdigest()


def test_a_prefix_that_cuts_a_character_is_kept_in_base64() -> None:
    payload = ("雨" * WHOLE_PAYLOAD_BYTES).encode()  # 3 bytes a character: the prefix cuts one
    rec = orjson.loads(deadletter_record("hw/v1/RG-001/batch", payload, [Reject("not JSON")], 1))
    assert "payload_prefix_b64" in rec and "payload_prefix" not in rec


def test_a_batch_of_thousands_of_bad_items_is_one_bounded_dead_letter() -> None:
    now = int(time.time() * 1000)
    items = [{"sensor": "NOPE-9", "ts": now, "v": i} for i in range(5000)]  # about 250 KB: under the limit
    payload = orjson.dumps({"readings": items})
    valid, rejects = validate_message(CONFIG, "hw/v1/CH-001/batch", payload, now)
    assert len(rejects) == 5000
    value = deadletter_record("hw/v1/CH-001/batch", payload, rejects, now)
    rec = orjson.loads(value)
    assert len(value) < BOUND
    assert rec["rejected"] == 5000 and len(rec["reasons"]) == len(rec["items"]) == FIRST_REASONS
    assert "unknown sensor 'NOPE-9'" in rec["reason"]
