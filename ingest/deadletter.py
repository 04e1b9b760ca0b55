"""Ingest's dead letters: one per rejected MQTT message, bounded in size whatever arrived.

A dead letter names the MQTT topic, the number of rejected items, the first reasons (and the
first offending batch items), the payload's size and SHA-256, and the payload itself only when it
is small; a larger one is kept as a prefix. So a 4.5 MB message, or a batch of 10,000 bad items,
still becomes one record of a few kilobytes: the dead-letter topic cannot amplify a flood, and no
dead letter can exceed what Kafka accepts.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

import orjson

from ingest.validate import Reject

__all__ = ["FIRST_REASONS", "REASON_KINDS", "WHOLE_PAYLOAD_BYTES", "deadletter_record", "reason_kind"]

WHOLE_PAYLOAD_BYTES = 4096
"""Payloads up to this size are kept whole; larger ones as their first PREFIX_BYTES."""
PREFIX_BYTES = 1024
FIRST_REASONS = 5
"""Reasons (and batch items) kept of a message with many bad items; the count says how many."""


REASON_KINDS = (  # (kind, how a reason of that kind starts), first match wins
    ("topic", r"topic "), ("site", r"(invalid|unknown) site"), ("sensor", r"(invalid|unknown) sensor"),
    ("oversize", r"oversize"), ("json", r"(not JSON|non-finite)"), ("status", r"status payload"),
    ("batch", r"batch"), ("reading", r"reading (must|needs)"), ("timestamp", r"ts "), ("value", r"v (must|is)"),
    ("quality", r"q must"), ("internal", r"internal"),
)
_KINDS = [(kind, re.compile(pattern)) for kind, pattern in REASON_KINDS]


def reason_kind(reason: str) -> str:
    """The kind of a reject's reason, a label of few values (``other`` if none fits) for metrics."""
    reason = re.sub(r"^readings\[\d+\]: ", "", reason)
    return next((kind for kind, pattern in _KINDS if pattern.match(reason)), "other")


def _payload(payload: bytes) -> dict[str, object]:
    kept = payload if len(payload) <= WHOLE_PAYLOAD_BYTES else payload[:PREFIX_BYTES]
    key = "payload" if kept is payload else "payload_prefix"
    try:
        return {key: kept.decode("utf-8")}
    except UnicodeDecodeError:
        # a prefix may cut a UTF-8 sequence: say it in base64 rather than mangle it
        return {f"{key}_b64": base64.b64encode(kept).decode()}


def deadletter_record(topic: str, payload: bytes, rejects: Sequence[Reject], received_ms: int) -> bytes:
    """The dead-letter value of one MQTT message whose ``rejects`` (at least one) were refused."""
    first = rejects[:FIRST_REASONS]
    rec: dict[str, object] = {
        "source": "ingest", "topic": topic, "reason": first[0].reason, "rejected": len(rejects),
        "reasons": [r.reason for r in first], "received_at": received_ms,
        "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(), **_payload(payload),
    }
    items = [r.item for r in first if r.item is not None]
    if items:
        rec["items"] = items
    return orjson.dumps(rec, option=orjson.OPT_NON_STR_KEYS)
