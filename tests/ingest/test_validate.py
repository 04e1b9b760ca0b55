"""ingest.validate: every payload ends as valid output or as a reject with a reason.

Table-driven over the MQTT contract (docs/ARCHITECTURE.md §14.2 and §4), plus a hypothesis
property: arbitrary topics and payloads never raise and are never silently lost.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import Config, load_config
from formats.readings import Readings
from ingest.validate import MAX_BATCH_ITEMS, Reject, Status, parse_ts, validate_message

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example"

NOW = 1_750_000_000_000  # 2025-06-15T15:06:40Z, epoch ms
MAX_PAYLOAD = 262_144  # hazwatch.yaml ingest.max_payload_bytes
SKEW_MS = 300_000  # ingest.max_future_skew_s
MAX_AGE_MS = 604_800_000  # ingest.max_age_s

READING = "hw/v1/CH-001/GT-101/reading"
BATCH = "hw/v1/TD-001/batch"
STATUS = "hw/v1/RG-001/status"


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(EXAMPLE, env={})


def _json(obj: Any) -> bytes:
    # json, not orjson: it can write the NaN/Infinity literals some devices send.
    return json.dumps(obj, allow_nan=True).encode()


class Prefix(str):
    """An expected reason of which only the start is stable (it quotes a parser message)."""


@dataclass
class Case:
    id: str
    topic: str
    payload: bytes
    rejects: list[str] = field(default_factory=list)
    batch: dict[str, list[Any]] | None = None
    """Expected columns ``sensor``, ``ts``, ``v``, ``q``; None when no batch is expected."""
    status: str | None = None


def _reading(ts: Any = NOW - 1000, v: Any = 12.5, **extra: Any) -> dict[str, Any]:
    return {"ts": ts, "v": v, **extra}


def _one(
    ts: int = NOW - 1000, v: float = 12.5, q: int = 0, sensor: str = "GT-101"
) -> dict[str, list[Any]]:
    return {"sensor": [sensor], "ts": [ts], "v": [v], "q": [q]}


def _oversize(n: int) -> bytes:
    body = _json(_reading())
    return body + b" " * (n - len(body))  # trailing whitespace: still valid JSON


CASES = [
    # ---------------------------------------------------------------- valid single readings
    Case("int_ts", READING, _json(_reading(q=0)), batch=_one()),
    Case("q_defaults_to_0", READING, _json(_reading()), batch=_one()),
    Case("q_kept", READING, _json(_reading(q=3)), batch=_one(q=3)),
    Case("int_v_becomes_float", READING, _json(_reading(v=7)), batch=_one(v=7.0)),
    Case(
        "rfc3339_offset",
        READING,
        _json(_reading(ts="2025-06-15T23:06:30.250+08:00")),
        batch=_one(ts=NOW - 9750),
    ),
    Case("rfc3339_z", READING, _json(_reading(ts="2025-06-15T15:06:40Z")), batch=_one(ts=NOW)),
    Case(
        "future_at_limit", READING, _json(_reading(ts=NOW + SKEW_MS)), batch=_one(ts=NOW + SKEW_MS)
    ),
    Case(
        "old_at_limit",
        READING,
        _json(_reading(ts=NOW - MAX_AGE_MS)),
        batch=_one(ts=NOW - MAX_AGE_MS),
    ),
    Case("size_at_limit", READING, _oversize(MAX_PAYLOAD), batch=_one()),
    # ------------------------------------------------------------------------------ batches
    Case(
        "batch",
        BATCH,
        _json(
            {
                "readings": [
                    {"sensor": "PZ-01", "ts": NOW - 600_000, "v": 5.2},
                    {"sensor": "FB-01", "ts": "2025-06-15T23:06:40+08:00", "v": 1.1, "q": 1},
                ]
            }
        ),
        batch={
            "sensor": ["PZ-01", "FB-01"],
            "ts": [NOW - 600_000, NOW],
            "v": [5.2, 1.1],
            "q": [0, 1],
        },
    ),
    Case(
        "batch_one_bad_item",
        BATCH,
        _json(
            {
                "readings": [
                    {"sensor": "PZ-01", "ts": NOW, "v": 5.2},
                    {"sensor": "PZ-01", "ts": NOW, "v": "5.3"},
                    {"sensor": "WL-01", "ts": NOW, "v": 349.0},
                ]
            }
        ),
        rejects=["readings[1]: v must be a number, got str"],
        batch={"sensor": ["PZ-01", "WL-01"], "ts": [NOW, NOW], "v": [5.2, 349.0], "q": [0, 0]},
    ),
    Case(
        "batch_items_all_bad",
        BATCH,
        _json(
            {
                "readings": [
                    {"sensor": "GT-101", "ts": NOW, "v": 1},
                    {"ts": NOW, "v": 1},
                    {"sensor": "bad id", "ts": NOW, "v": 1},
                    42,
                    {"sensor": "PZ-01", "ts": NOW + SKEW_MS + 1000, "v": 1},
                ]
            }
        ),
        rejects=[
            "readings[0]: unknown sensor 'GT-101' at site 'TD-001'",
            "readings[1]: invalid sensor id None",
            "readings[2]: invalid sensor id 'bad id'",
            "readings[3]: reading must be a JSON object, got int",
            f"readings[4]: ts {NOW + SKEW_MS + 1000} is 301 s in the future (limit 300 s)",
        ],
    ),
    Case("batch_empty", BATCH, _json({"readings": []}), rejects=["batch has no readings"]),
    Case(
        "batch_not_a_list",
        BATCH,
        _json({"readings": {"sensor": "PZ-01", "ts": NOW, "v": 1}}),
        rejects=["batch payload must be an object with a 'readings' list"],
    ),
    Case(
        "batch_is_a_list",
        BATCH,
        _json([{"sensor": "PZ-01", "ts": NOW, "v": 1}]),
        rejects=["batch payload must be an object with a 'readings' list"],
    ),
    Case(
        "batch_too_many",
        BATCH,
        _json({"readings": [{}] * (MAX_BATCH_ITEMS + 1)}),
        rejects=[f"batch has {MAX_BATCH_ITEMS + 1} readings, more than {MAX_BATCH_ITEMS}"],
    ),
    # ------------------------------------------------------------------------ not JSON at all
    Case("not_json", READING, b"ts=1750000000000 v=12.5", rejects=[Prefix("not JSON: ")]),
    Case(
        "truncated_json", READING, b'{"ts": 1750000000000, "v": 12', rejects=[Prefix("not JSON: ")]
    ),
    Case(
        "not_utf8",
        READING,
        b'{"ts": 1, "v": "\xff"}',
        rejects=[Prefix("not JSON: str is not valid UTF-8")],
    ),
    Case("empty_payload", READING, b"", rejects=[Prefix("not JSON: ")]),
    Case(
        "nan",
        READING,
        _json(_reading(v=math.nan)),
        rejects=["non-finite number (NaN/Infinity is not valid JSON)"],
    ),
    Case(
        "infinity",
        READING,
        _json(_reading(v=math.inf)),
        rejects=["non-finite number (NaN/Infinity is not valid JSON)"],
    ),
    Case(
        "minus_infinity",
        READING,
        _json(_reading(v=-math.inf)),
        rejects=["non-finite number (NaN/Infinity is not valid JSON)"],
    ),
    # orjson refuses a literal that overflows a double rather than returning inf.
    Case(
        "overflow_1e999",
        READING,
        b'{"ts": 1750000000000, "v": 1e999}',
        rejects=[Prefix("not JSON: number is infinity when parsed as double")],
    ),
    # ------------------------------------------------------------------------------ wrong types
    Case("v_string", READING, _json(_reading(v="12.5")), rejects=["v must be a number, got str"]),
    Case("v_bool", READING, _json(_reading(v=True)), rejects=["v must be a number, got bool"]),
    Case("v_null", READING, _json(_reading(v=None)), rejects=["v must be a number, got NoneType"]),
    Case(
        "ts_bool",
        READING,
        _json(_reading(ts=True)),
        rejects=["ts must be epoch milliseconds or an RFC 3339 string, not a boolean"],
    ),
    Case(
        "ts_float",
        READING,
        _json(_reading(ts=NOW + 0.5)),
        rejects=["ts must be integer epoch milliseconds, got a float"],
    ),
    # orjson reads an integer beyond 64 bits as a float.
    Case(
        "ts_huge_int",
        READING,
        b'{"ts": 123456789012345678901234567890, "v": 1}',
        rejects=["ts must be integer epoch milliseconds, got a float"],
    ),
    Case(
        "ts_list",
        READING,
        _json(_reading(ts=[NOW])),
        rejects=["ts must be epoch milliseconds or an RFC 3339 string, got list"],
    ),
    Case(
        "ts_no_offset",
        READING,
        _json(_reading(ts="2025-06-15T23:06:40")),
        rejects=["ts '2025-06-15T23:06:40' has no UTC offset"],
    ),
    Case(
        "ts_not_a_date",
        READING,
        _json(_reading(ts="yesterday")),
        rejects=["ts 'yesterday' is not an RFC 3339 timestamp"],
    ),
    Case(
        "q_string",
        READING,
        _json(_reading(q="0")),
        rejects=["q must be an integer quality code, got str"],
    ),
    Case(
        "q_bool",
        READING,
        _json(_reading(q=False)),
        rejects=["q must be an integer quality code, got bool"],
    ),
    Case(
        "reading_not_object",
        READING,
        _json([NOW, 12.5]),
        rejects=["reading must be a JSON object, got list"],
    ),
    Case(
        "missing_v",
        READING,
        _json({"ts": NOW, "q": 0}),
        rejects=["reading needs 'ts' and 'v', got keys ['q', 'ts']"],
    ),
    Case(
        "missing_ts",
        READING,
        _json({"v": 1.0}),
        rejects=["reading needs 'ts' and 'v', got keys ['v']"],
    ),
    # ------------------------------------------------------------------------- time and size
    Case(
        "ts_too_far_in_future",
        READING,
        _json(_reading(ts=NOW + SKEW_MS + 1)),
        rejects=[f"ts {NOW + SKEW_MS + 1} is 300 s in the future (limit 300 s)"],
    ),
    Case(
        "ts_an_hour_ahead",
        READING,
        _json(_reading(ts=NOW + 3_600_000)),
        rejects=[f"ts {NOW + 3_600_000} is 3600 s in the future (limit 300 s)"],
    ),
    Case(
        "ts_too_old",
        READING,
        _json(_reading(ts=NOW - MAX_AGE_MS - 1)),
        rejects=[f"ts {NOW - MAX_AGE_MS - 1} is older than 604800 s"],
    ),
    Case("ts_zero", READING, _json(_reading(ts=0)), rejects=["ts 0 is older than 604800 s"]),
    Case(
        "oversize",
        READING,
        _oversize(MAX_PAYLOAD + 1),
        rejects=[f"oversize payload: {MAX_PAYLOAD + 1} bytes > {MAX_PAYLOAD}"],
    ),
    # ------------------------------------------------------------------------- sites and sensors
    Case(
        "unknown_site",
        "hw/v1/XX-999/GT-101/reading",
        _json(_reading()),
        rejects=["unknown site 'XX-999'"],
    ),
    Case(
        "unknown_sensor",
        "hw/v1/CH-001/PZ-01/reading",
        _json(_reading()),
        rejects=["unknown sensor 'PZ-01' at site 'CH-001'"],
    ),
    Case(
        "bad_site_id",
        "hw/v1/CH 001/GT-101/reading",
        _json(_reading()),
        rejects=["invalid site id 'CH 001'"],
    ),
    Case(
        "site_id_too_long",
        f"hw/v1/{'S' * 65}/GT-101/reading",
        _json(_reading()),
        rejects=[f"invalid site id {'S' * 65!r}"],
    ),
    Case(
        "empty_site_id", "hw/v1//GT-101/reading", _json(_reading()), rejects=["invalid site id ''"]
    ),
    Case(
        "bad_sensor_id",
        "hw/v1/CH-001/GT+101/reading",
        _json(_reading()),
        rejects=["invalid sensor id 'GT+101'"],
    ),
    # ----------------------------------------------------------------------------------- status
    Case("status_online", STATUS, b"online", status="online"),
    Case("status_offline", STATUS, b"offline\n", status="offline"),
    Case(
        "status_garbage",
        STATUS,
        b"maybe",
        rejects=["status payload must be 'online' or 'offline', got 'maybe'"],
    ),
    Case(
        "status_json",
        STATUS,
        b'{"status": "online"}',
        rejects=["status payload must be 'online' or 'offline', got '{\"status\": \"online\"}'"],
    ),
    Case(
        "status_unknown_site", "hw/v1/XX-999/status", b"online", rejects=["unknown site 'XX-999'"]
    ),
    # ----------------------------------------------------------------------------------- topics
    Case(
        "topic_not_hw",
        "sensors/CH-001/GT-101/reading",
        _json(_reading()),
        rejects=["topic 'sensors/CH-001/GT-101/reading' is not in the hw/v1/... contract"],
    ),
    Case(
        "topic_v2",
        "hw/v2/CH-001/GT-101/reading",
        _json(_reading()),
        rejects=["topic 'hw/v2/CH-001/GT-101/reading' is not in the hw/v1/... contract"],
    ),
    Case(
        "topic_too_short",
        "hw/v1/CH-001",
        _json(_reading()),
        rejects=["topic 'hw/v1/CH-001' is not in the hw/v1/... contract"],
    ),
    Case(
        "topic_unknown_kind",
        "hw/v1/CH-001/GT-101/config",
        _json(_reading()),
        rejects=["topic 'hw/v1/CH-001/GT-101/config' is not a reading, batch or status topic"],
    ),
    Case(
        "topic_too_deep",
        "hw/v1/CH-001/GT-101/extra/reading",
        _json(_reading()),
        rejects=[
            "topic 'hw/v1/CH-001/GT-101/extra/reading' is not a reading, batch or status topic"
        ],
    ),
    Case(
        "topic_sensor_status",
        "hw/v1/CH-001/GT-101/status",
        b"online",
        rejects=["topic 'hw/v1/CH-001/GT-101/status' is not a reading, batch or status topic"],
    ),
    Case(
        "topic_broadcast",
        "hw/v1/broadcast/Z-XIAHE-VILLAGE/cap",
        b"<alert/>",
        rejects=["topic 'hw/v1/broadcast/Z-XIAHE-VILLAGE/cap' is not a reading, batch or status topic"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_validate_message(cfg: Config, case: Case) -> None:
    result, rejects = validate_message(cfg, case.topic, case.payload, NOW)

    assert len(rejects) == len(case.rejects), [r.reason for r in rejects]
    for got, want in zip(rejects, case.rejects, strict=True):
        assert isinstance(got, Reject)
        if isinstance(want, Prefix):
            assert got.reason.startswith(want), got.reason
        else:
            assert got.reason == want

    if case.batch is not None:
        assert isinstance(result, Readings)
        assert result.site == case.topic.split("/")[2]
        columns = {"sensor": result.sensor, "ts": result.ts, "v": result.v, "q": result.q}
        assert columns == case.batch
        assert all(type(v) is float for v in result.v)
    elif case.status is not None:
        assert result == Status(case.topic.split("/")[2], case.status)
    else:
        assert result is None


def test_rejected_batch_item_carries_the_item(cfg: Config) -> None:
    bad = {"sensor": "PZ-01", "ts": NOW, "v": "5.3"}
    payload = _json({"readings": [{"sensor": "PZ-01", "ts": NOW, "v": 5.2}, bad]})
    _, rejects = validate_message(cfg, BATCH, payload, NOW)
    assert rejects == [Reject("readings[1]: v must be a number, got str", bad)]


def test_batch_to_json(cfg: Config) -> None:
    result, _ = validate_message(cfg, READING, _json(_reading(q=1)), NOW)
    assert isinstance(result, Readings)
    assert orjson.loads(result.encode()) == {
        "site": "CH-001",
        "sensor": ["GT-101"],
        "ts": [NOW - 1000],
        "v": [12.5],
        "q": [1],
        "i": [cfg.sensor_index("CH-001", "GT-101")],
        "cfg": cfg.sensor_fingerprint,
    }


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2025-06-15T15:06:40Z", NOW),
        ("2025-06-15T15:06:40+00:00", NOW),
        ("2025-06-15T23:06:40+08:00", NOW),
        ("2025-06-15T23:06:40.001+08:00", NOW + 1),
        ("2025-06-15T10:06:40.999-05:00", NOW + 999),
    ],
)
def test_parse_ts_rfc3339(text: str, ms: int) -> None:
    assert parse_ts(text) == ms


# --------------------------------------------------------------------------------- property

SITES = ["CH-001", "TD-001", "RG-001"]
SENSORS = [
    "GT-101",
    "GT-102",
    "LT-201",
    "PZ-01",
    "FB-01",
    "DB-01",
    "WL-01",
    "GNSS-01",
    "RAIN-5M",
    "RAIN-1H",
]

_ids = st.one_of(st.sampled_from(SITES + SENSORS), st.text(max_size=8))
_topics = st.one_of(
    st.text(max_size=40),
    st.builds(lambda s, x: f"hw/v1/{s}/{x}/reading", _ids, _ids),
    st.builds(lambda s: f"hw/v1/{s}/batch", _ids),
    st.builds(lambda s: f"hw/v1/{s}/status", _ids),
    st.builds(lambda parts: "/".join(["hw", "v1", *parts]), st.lists(_ids, max_size=5)),
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_offsets = st.integers(-1439, 1439).map(lambda m: timezone(timedelta(minutes=m)))
_timestamps = st.one_of(
    st.integers(NOW - 2 * MAX_AGE_MS, NOW + 2 * SKEW_MS),
    st.integers(),
    st.builds(lambda dt, tz: dt.replace(tzinfo=tz).isoformat(), st.datetimes(), _offsets),
    st.datetimes().map(datetime.isoformat),
    _json_values,
)
_values = st.one_of(st.floats(), st.integers(), _json_values)
_readings = st.fixed_dictionaries(
    {"ts": _timestamps, "v": _values},
    optional={"q": st.one_of(st.integers(-5, 5), _json_values), "sensor": _ids},
)
_payloads = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"online", b"offline", b"1e999", b"NaN", b"[]", b"{}"]),
    _json_values.map(_json),
    _readings.map(_json),
    st.lists(st.one_of(_readings, _json_values), max_size=6).map(
        lambda items: _json({"readings": items})
    ),
)


@settings(max_examples=400, deadline=None)
@given(topic=_topics, payload=_payloads)
def test_nothing_raises_and_nothing_is_lost(cfg: Config, topic: str, payload: bytes) -> None:
    result, rejects = validate_message(cfg, topic, payload, NOW)

    assert all(isinstance(r, Reject) and r.reason for r in rejects)
    if result is None:
        assert rejects, "a message that produced nothing must produce a reject"
    elif isinstance(result, Status):
        assert rejects == [] and result.status in ("online", "offline")
    else:
        assert isinstance(result, Readings) and len(result) >= 1
        assert len(result.sensor) == len(result.ts) == len(result.v) == len(result.q)
        assert all(cfg.sensor(result.site, s) is not None for s in result.sensor)
        assert all(math.isfinite(v) for v in result.v)
        assert all(NOW - MAX_AGE_MS <= ts <= NOW + SKEW_MS for ts in result.ts)

    # Per item, each reading is either kept or rejected: none dropped, none counted twice.
    kept = len(result) if isinstance(result, Readings) else 0
    if topic.count("/") == 4 and topic.endswith("/reading"):
        assert kept + len(rejects) == 1
    if topic.count("/") == 3 and topic.endswith("/batch") and (kept or len(rejects) > 1):
        items = orjson.loads(payload)["readings"]
        assert kept + len(rejects) == len(items)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), st.lists(st.integers(), max_size=2))


@settings(max_examples=400, deadline=None)
@given(sensor=st.one_of(st.sampled_from(["GT-101", "GT-102", "NOPE", "bad id!"]), _VALUES),
       obj=st.one_of(_VALUES, st.dictionaries(st.sampled_from(["ts", "v", "q", "x"]),
                                               st.one_of(_VALUES, st.integers(min_value=-MAX_AGE_MS - 10**6, max_value=SKEW_MS + 10**6).map(
                                                   lambda d: NOW + d)), max_size=4)))
def test_the_short_way_agrees_with_the_checked_way(cfg: Config, sensor: Any, obj: Any) -> None:
    """Validation takes a short way for the usual reading; for any input it must reach the same
    verdict, and append the same reading, as the checked way."""
    from ingest.validate import _checked_reading, _lookup, _reading

    lookup = _lookup(cfg)
    short, checked = Readings("CH-001"), Readings("CH-001")
    verdict = _reading(lookup, "CH-001", sensor, obj, NOW, short)
    expected = _checked_reading(lookup, "CH-001", sensor, obj, NOW, checked)
    assert verdict == expected
    assert short == checked


_ITEM_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e3, 1e3),
                         st.integers(-10**6, 10**6), st.booleans(), st.none(), st.text(max_size=3))
_valid_item = st.fixed_dictionaries(
    {"sensor": st.sampled_from(["GT-101", "GT-102"]), "ts": st.integers(-100, 100).map(lambda d: NOW + d),
     "v": st.one_of(st.floats(-1e3, 1e3), st.integers(-10**6, 10**6))},
    optional={"q": st.integers(0, 3)})
_any_item = st.one_of(
    st.fixed_dictionaries(
        {"sensor": st.sampled_from(["GT-101", "GT-102", "NOPE", 7]),
         "ts": st.one_of(st.integers(-MAX_AGE_MS - 10**6, SKEW_MS + 10**6).map(lambda d: NOW + d),
                         st.booleans(), st.floats()),
         "v": _ITEM_VALUES},
        optional={"q": st.one_of(st.integers(0, 3), st.booleans(), st.none())}),
    _VALUES)
#: Mostly gateway batches that are all valid, some with one odd item somewhere.
_batch_items = st.builds(lambda items, odd, at: items if odd is None else [*items[:at], odd, *items[at:]],
                         st.lists(_valid_item, min_size=1, max_size=8), st.one_of(st.none(), _any_item),
                         st.integers(0, 8))


@settings(max_examples=400, deadline=None)
@given(items=_batch_items)
def test_a_batch_taken_whole_agrees_with_one_reading_at_a_time(cfg: Config, items: list[Any]) -> None:
    """A batch whose readings are all valid is taken a column at a time; for any batch the result
    must be what the readings taken one at a time give, and a batch the whole way refuses is
    left untouched for them."""
    from ingest.validate import _lookup, _reading, _whole_batch

    lookup = _lookup(cfg)
    whole, one_by_one = Readings("CH-001"), Readings("CH-001")
    taken = _whole_batch(lookup, "CH-001", items, NOW, whole)
    verdicts = [_reading(lookup, "CH-001", item.get("sensor") if isinstance(item, dict) else None, item, NOW,
                         one_by_one) for item in items]
    if taken:
        assert verdicts == [None] * len(items)
        assert whole == one_by_one
    else:
        assert whole == Readings("CH-001")
    try:
        json.dumps(items, allow_nan=False)
    except ValueError:
        return  # not JSON: the whole message is rejected (the first test above)
    result, rejects = validate_message(cfg, "hw/v1/CH-001/batch", _json({"readings": items}), NOW)
    assert (result or Readings("CH-001", cfg=lookup.fingerprint)) == Readings(
        "CH-001", one_by_one.sensor, one_by_one.ts, one_by_one.v, one_by_one.q, one_by_one.i, lookup.fingerprint)
    assert len(rejects) == sum(v is not None for v in verdicts)
