"""The maintenance feed: which maintenance silences become engine windows, and their records."""

from __future__ import annotations

import datetime as dt
import socket
import time

import orjson
import pytest

from alerts.maintenance_feed import FeedError, engine_record, engine_scope, publish, tell_engine
from alerts.store import Silence
from config import example_dir, load_config
from config.models import Config
from formats.maintenance import RuntimeWindow

START = dt.datetime(2026, 3, 10, 1, 0, tzinfo=dt.UTC)
END = START + dt.timedelta(hours=2)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(example_dir())


def silence(matcher: dict[str, str], *, kind: str = "maintenance", ended_at: dt.datetime | None = None) -> Silence:
    return Silence(id=7, kind=kind, matcher=matcher, starts_at=START, ends_at=END, created_by="李工",
                   reason="更换探头 replacing the sensor head", ended_at=ended_at,
                   ended_by="王主任" if ended_at else None)


@pytest.mark.parametrize(("matcher", "scope"), [
    ({"site": "CH-001"}, ("CH-001", [])),
    ({"site": "CH-001", "max_level": "red"}, ("CH-001", [])),  # the engine evaluates nothing at all
    ({"site": "CH-001", "subject": "CH-001/*"}, ("CH-001", [])),
    ({"site": "CH-001", "subject": "CH-001/GT-101"}, ("CH-001", ["GT-101"])),
    ({"subject": "CH-001/GT-101"}, ("CH-001", ["GT-101"])),  # the subject names the site
    ({"site": "CH-001", "subject": "CH-001/GT-*"}, ("CH-001", ["GT-101", "GT-102"])),
    ({"site": "CH-001", "rule": "combustible_gas"}, "names a rule"),
    ({"subject": "CH-*"}, "names no site"),
    ({"site": "XX-999"}, "not in the configuration"),
    ({"site": "CH-001", "subject": "CH-001/NOPE"}, "no sensor of CH-001"),
    ({"site": "CH-001", "subject": "TD-001/PZ-01"}, "no sensor of CH-001"),
])
def test_scope_of_a_matcher(config: Config, matcher: dict[str, str], scope: object) -> None:
    got = engine_scope(matcher, config)
    assert got == scope if isinstance(scope, tuple) else scope in got


def test_the_record_round_trips_through_the_engine_parser(config: Config) -> None:
    rec = engine_record(silence({"site": "CH-001", "subject": "CH-001/GT-101"}), config)
    assert rec == {"id": 7, "site": "CH-001", "sensors": ["GT-101"], "start_ms": 1_773_104_400_000,
                   "end_ms": 1_773_111_600_000, "kind": "maintenance",
                   "reason": "更换探头 replacing the sensor head", "ended": False}
    assert isinstance(rec, dict)
    assert RuntimeWindow.from_record(orjson.loads(orjson.dumps(rec))).to_record() == rec


def test_an_ended_window_ends_when_it_was_ended(config: Config) -> None:
    ended = START + dt.timedelta(minutes=30)
    rec = engine_record(silence({"site": "CH-001"}, ended_at=ended), config)
    assert isinstance(rec, dict) and rec["ended"] is True
    assert rec["end_ms"] == int(ended.timestamp() * 1000)


def test_a_plain_silence_is_not_for_the_engine(config: Config) -> None:
    assert "not a maintenance window" in str(engine_record(silence({"site": "CH-001"}, kind="silence"), config))
    assert tell_engine(config, silence({"site": "CH-001"}, kind="silence")) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kafka_down_is_an_outcome_that_says_how_to_publish_again(config: Config) -> None:
    down = config.model_copy(update={"settings": config.settings.model_copy(update={
        "kafka": config.settings.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{_closed_port()}"})})})
    started = time.monotonic()
    (outcome,) = tell_engine(down, silence({"site": "CH-001", "subject": "CH-001/GT-101"}))
    assert time.monotonic() - started < 10  # bounded, not kafka-python's 30 s default
    assert outcome.failed and not outcome.told and outcome.record is not None
    assert "NOT told" in outcome.note and "hazwatch silences publish 7" in outcome.note
    (skipped,) = tell_engine(down, silence({"rule": "combustible_gas"}))
    assert not skipped.failed and "only holds back notifications" in skipped.note
    with pytest.raises(FeedError, match="Kafka at 127.0.0.1:"):
        publish(down.settings.kafka.bootstrap, [outcome.record], timeout_s=1)
