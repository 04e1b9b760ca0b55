"""What the history writer stores, as line protocol (history/points.py): each line as
influxdb-client's own Point would write it."""

from __future__ import annotations

import orjson
from influxdb_client import Point, WritePrecision

from config import example_dir, load_config
from config.topics import DEADLETTER, HEALTH, READINGS, WARNINGS
from history.points import Lines

CONFIG = load_config(example_dir())
SITE = next(s for s in CONFIG.sites if s.id == "CH-001")


def point(measurement: str, tags: dict[str, str], fields: dict[str, object], ts: int) -> str:
    p = Point(measurement)
    for k, v in tags.items():
        p.tag(k, v)
    for k, v in fields.items():
        p.field(k, v)
    return p.time(ts, WritePrecision.MS).to_line_protocol()


def test_a_readings_record_is_one_line_per_reading() -> None:
    record = {"site": "CH-001", "sensor": ["GT-101", "GT-102"], "ts": [1000, 2000], "v": [1.5, 3], "q": [0, 2],
              "i": [0, 1], "cfg": "x"}
    lines = Lines(CONFIG).of(READINGS, orjson.dumps(record))
    tags = {"site": "CH-001", "enterprise": SITE.enterprise, "region": SITE.region}
    assert lines == [
        point("reading", {**tags, "sensor": "GT-101", "quantity": "combustible_gas", "unit": "%LEL"},
              {"v": 1.5, "q": 0}, 1000),
        point("reading", {**tags, "sensor": "GT-102", "quantity": "toxic_gas", "unit": "%OEL"},
              {"v": 3.0, "q": 2}, 2000),
    ]


def test_warnings_quality_and_presence() -> None:
    lines = Lines(CONFIG)
    warning = {"episode": "ep-1", "site": "CH-001", "subject": "CH-001/GT-101", "rule": "combustible_gas",
               "kind": "raised", "level": "red", "previous": "normal", "ts": 5000, "emitted_at": 5001,
               "value": 60.0, "threshold": 50.0, "unit": "%LEL", "detail": {}}
    tags = {"site": "CH-001", "enterprise": SITE.enterprise, "region": SITE.region}
    assert lines.of(WARNINGS, orjson.dumps(warning)) == [point(
        "warning", {**tags, "subject": "CH-001/GT-101", "rule": "combustible_gas", "episode": "ep-1", "kind": "raised",
                    "level": "red"}, {"value": 60.0, "level_rank": 4}, 5000)]
    offline = {"site": "CH-001", "subject": "CH-001/GT-101", "sensor": "GT-101", "check": "offline", "state": "fault",
               "ts": 6000, "detected_at": 6000, "value": None, "detail": {}}
    assert lines.of(HEALTH, orjson.dumps(offline)) == [point(
        "quality", {**tags, "sensor": "GT-101", "check": "offline"}, {"fault": 1}, 6000)]
    presence = {"site": "CH-001", "kind": "presence", "status": "offline", "ts": 7000, "source": "mqtt"}
    assert lines.of(HEALTH, orjson.dumps(presence)) == [point("presence", tags, {"online": 0}, 7000)]


def test_what_cannot_be_read_is_no_line() -> None:
    lines = Lines(CONFIG)
    assert lines.of(READINGS, b"{not json") == []
    assert lines.of(READINGS, orjson.dumps({"site": "CH-001"})) == []
    assert lines.of(DEADLETTER, b"{}") == []
    assert lines.of(HEALTH, orjson.dumps({"site": "CH-001", "kind": "other"})) == []
