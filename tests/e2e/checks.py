"""What the end-to-end tests check after a scenario: the warning sequences per subject, the
outbox and the SMS the fake Twilio received, and the readings that Kafka holds and the rules
workers consumed. Counts and contents only, never timing or log text."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable

import orjson
from kafka import KafkaConsumer
from sqlalchemy import func, select

from alerts.store import Episode, Notification
from config import Config
from config.topics import READINGS
from hazwatch.kafka_admin import all_partitions
from rules.changelog import partition_of
from sensors.simulator import PlannedMessage
from tests.e2e.conftest import (
    ROOT,
    Pipeline,
    TopicReader,
    committed_offsets,
    expected_sequences,
    wait_until,
)

SCENARIO_FILE = ROOT / "sensors" / "scenarios" / "all.yaml"
STATE_CHANGELOG = "hazwatch-rules-threshold-state-changelog"  # faust: <app id>-<table>-changelog


def audiences(config: Config, site_id: str) -> dict[str, set[str]]:
    """The test's own reading of the example routing: who must hear which level of a site."""
    site = config.site(site_id)
    ops = {r.phone for r in config.recipients if r.role == "operator"}
    officers = {r.phone for r in config.recipients if r.role == "officer" and r.enterprise == site.enterprise}
    county = {r.phone for r in config.recipients if r.role == "regulator" and r.tier == "county"
              and r.region == site.region}
    residents = {sub.phone for z in config.zones if z.id in config.affected_zones(site_id) for sub in z.subscribers}
    return {
        "blue": ops,
        "yellow": ops | officers,
        "orange": ops | officers | (residents if site.kind == "rain" else set()),
        "red": ops | officers | county | residents,
    }


def sent_rows(pipeline: Pipeline) -> list[Notification]:
    with pipeline.store().session() as s:
        return list(s.scalars(select(Notification).order_by(Notification.id)))


def settled(pipeline: Pipeline, episodes: int) -> bool:
    """Every episode has been cleared in the store and nothing is left to send."""
    with pipeline.store().session() as s:
        cleared = s.scalar(select(func.count()).select_from(Episode).where(Episode.state == "cleared"))
    rows = sent_rows(pipeline)
    return cleared == episodes and all(r.status in ("sent", "suppressed", "failed") for r in rows)


def sequences_from(events: list[dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    seen = set()
    for e in events:
        if e["rule"] == "equipment_fault":  # sensors that fall silent after the scenario
            continue
        key = (e["episode"], e["kind"], e["level"], e["ts"])
        if key in seen:  # at-least-once: a redelivered event is the same event
            continue
        seen.add(key)
        out[e["subject"]].append(e["level"])
    return dict(out)


def assert_sms_once(pipeline: Pipeline) -> list[dict]:
    """Every sent outbox row reached the fake Twilio exactly once, and nobody heard a level of an
    episode twice. Returns the fake's messages."""
    sms = pipeline.sms()
    assert len({(m["to"], m["body"]) for m in sms}) == len(sms), "an SMS was sent twice"
    rows = [r for r in sent_rows(pipeline) if r.channel == "sms"]
    assert not [r for r in rows if r.status not in ("sent", "suppressed")], "undelivered notifications"
    sent = [r for r in rows if r.status == "sent"]
    assert {m["sid"] for m in sms} == {r.provider_id for r in sent}, "the fake got exactly what the outbox sent"
    heard = Counter((r.episode, r.level, r.recipient) for r in sent)
    assert not heard or max(heard.values()) == 1, "someone heard the same level of an episode twice"
    return sms


def readings_in_kafka(bootstrap: str) -> tuple[Counter, dict[int, int]]:
    """Each reading in ``hazwatch.readings`` -> how many times it is stored, keyed by (site, sensor,
    ts); and each partition's end offset. Asserts that every record is in its site's partition."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             client_id="e2e-readings")
    try:
        tps = all_partitions(consumer, [READINGS])
        consumer.assign(tps)
        ends = {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
        count: Counter = Counter()
        while any(consumer.position(tp) < ends[tp.partition] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    m = orjson.loads(rec.value)
                    # where the rules worker looks for the site (ingest's librdkafka producer must
                    # partition as kafka-python and aiokafka do)
                    assert rec.partition == partition_of(m["site"], len(tps)), (m["site"], rec.partition)
                    count.update((m["site"], sensor, ts) for sensor, ts in zip(m["sensor"], m["ts"], strict=True))
        return count, ends
    finally:
        consumer.close()


def changelog_partitions(bootstrap: str, topic: str) -> dict[bytes, set[int]]:
    """Key -> the partitions of ``topic`` (a faust table's changelog) that hold it."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             client_id="e2e-changelog")
    try:
        tps = all_partitions(consumer, [topic])
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        out: dict[bytes, set[int]] = defaultdict(set)
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                for rec in records:
                    out[rec.key].add(rec.partition)
        return dict(out)
    finally:
        consumer.close()


def assert_state_beside_readings(bootstrap: str) -> None:
    """Each site's rule state lives on the partition of its readings, so that the worker that owns
    a site's readings also owns (and keeps, across rebalances) its state."""
    from kafka.partitioner.default import murmur2

    kept = changelog_partitions(bootstrap, STATE_CHANGELOG)
    assert kept, "no rule state in the changelog"
    n = len(all_partitions_of(bootstrap, READINGS))
    for key, partitions in kept.items():
        assert partitions == {(murmur2(key) & 0x7FFFFFFF) % n}, f"state of {key!r} on partitions {partitions}"


def all_partitions_of(bootstrap: str, topic: str) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="e2e-partitions")
    try:
        return all_partitions(consumer, [topic])
    finally:
        consumer.close()


def rules_caught_up(bootstrap: str, ends: dict[int, int]) -> bool:
    """The rules workers' group has committed every readings offset up to ``ends``."""
    done = committed_offsets(bootstrap, "hazwatch-rules", READINGS)
    return all(done.get(p, 0) >= end for p, end in ends.items() if end > 0)


def planned_readings(messages: list[PlannedMessage]) -> set[tuple[str, str, int]]:
    """(site, sensor, ts) of every reading the plan publishes."""
    out = set()
    for m in messages:
        parts = m.topic.split("/")
        body = orjson.loads(m.payload)
        if parts[-1] == "reading":
            out.add((parts[2], parts[3], body["ts"]))
        elif parts[-1] == "batch":
            out.update((parts[2], r["sensor"], r["ts"]) for r in body["readings"])
    return out


def publish_paced(pipeline: Pipeline, messages: list[PlannedMessage], *, at: float | None = None) -> float:
    """Publish each message at its ``wall_s`` after ``at`` (default: now), in order, each
    acknowledged by the broker (QoS 1). Returns ``at``."""
    at = time.monotonic() if at is None else at
    for m in messages:
        delay = at + m.wall_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the devices' own pace, not a wait for the system under test
        pipeline.publish([m])
    return at


def took(action: Callable[[], object]) -> float:
    """Seconds ``action`` took: the devices' schedule resumes after it, not in a burst."""
    start = time.monotonic()
    action()
    return time.monotonic() - start


def assert_nothing_lost_or_twice(pipeline: Pipeline, messages: list[PlannedMessage], warnings: TopicReader,
                                 deadletter: TopicReader) -> None:
    expected = expected_sequences(SCENARIO_FILE)
    n_events = sum(len(v) for v in expected.values())
    wait_until(lambda: sum(map(len, sequences_from(warnings.poll()).values())) >= n_events, 180,
               f"{n_events} distinct warning events")
    got = sequences_from(warnings.records)
    wrong = {s: (got.get(s), expected.get(s)) for s in set(got) | set(expected) if got.get(s) != expected.get(s)}
    assert not wrong, f"a warning was lost, raised twice or out of order (subject: (got, expected)): {wrong}"

    wait_until(lambda: settled(pipeline, len(expected)), 180, "the outbox to settle")
    sms = assert_sms_once(pipeline)
    config = pipeline.config
    people = {r.phone for r in config.recipients if r.role != "regulator" or r.tier == "county"}
    people |= {sub.phone for z in config.zones for sub in z.subscribers}
    assert {m["to"] for m in sms} == people

    published = planned_readings(messages)
    stored, ends = readings_in_kafka(pipeline.stack.kafka_bootstrap)
    assert set(stored) == published, "a published reading is missing from Kafka, or one was made up"
    assert max(stored.values()) == 1, "a reading is stored twice"
    wait_until(lambda: rules_caught_up(pipeline.stack.kafka_bootstrap, ends), 120,
               "the rules workers to commit every readings offset")
    assert deadletter.poll() == [], deadletter.records[:3]
    assert_state_beside_readings(pipeline.stack.kafka_bootstrap)
