"""The operations endpoint's verdicts (hazwatch/ops.py) and the dead-letter reason kinds that
label ingest's metric (ingest/deadletter.py)."""

from __future__ import annotations

import pytest

from hazwatch.ops import health
from ingest.deadletter import reason_kind


def boom() -> str | None:
    raise ConnectionError("refused")


@pytest.mark.parametrize(("checks", "soft", "ok", "status", "reasons"), [
    ({"kafka": lambda: None, "mqtt": lambda: None}, (), True, "ok", {"kafka": None, "mqtt": None}),
    ({"kafka": lambda: "Kafka down", "mqtt": lambda: None}, (), False, "unhealthy", {"kafka": "Kafka down", "mqtt": None}),
    ({"kafka": lambda: None, "inbox": lambda: "full"}, ("inbox",), True, "degraded", {"kafka": None, "inbox": "full"}),
    ({"kafka": boom, "inbox": lambda: "full"}, ("inbox",), False, "unhealthy",
     {"kafka": "ConnectionError: refused", "inbox": "full"}),
    ({}, (), True, "ok", {}),
])
def test_health(checks: dict, soft: tuple, ok: bool, status: str, reasons: dict) -> None:
    got_ok, body = health("svc", checks, soft)
    assert (got_ok, body["ok"], body["status"], body["checks"], body["service"]) == (ok, ok, status, reasons, "svc")


@pytest.mark.parametrize(("reason", "kind"), [
    ("topic 'a/b' is not in the hw/v1/... contract", "topic"),
    ("unknown site 'XX-1'", "site"),
    ("invalid site id 'a b'", "site"),
    ("unknown sensor 'GT-9' at site 'CH-001'", "sensor"),
    ("oversize payload: 300000 bytes > 262144", "oversize"),
    ("not JSON: unexpected character", "json"),
    ("non-finite number (NaN/Infinity is not valid JSON)", "json"),
    ("status payload must be 'online' or 'offline', got 'x'", "status"),
    ("batch has no readings", "batch"),
    ("readings[3]: ts 5 is older than 604800 s", "timestamp"),
    ("readings[0]: v must be a number, got str", "value"),
    ("v is not a finite number", "value"),
    ("q must be an integer quality code, got str", "quality"),
    ("reading must be a JSON object, got list", "reading"),
    ("internal validation error: KeyError()", "internal"),
    ("something new", "other"),
])
def test_reason_kind(reason: str, kind: str) -> None:
    assert reason_kind(reason) == kind
