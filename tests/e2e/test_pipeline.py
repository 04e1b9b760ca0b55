"""The whole pipeline on real brokers: MQTT -> ingest -> Kafka -> faust rules -> warnings ->
alerts -> SMS through the real twilio library (fake Twilio server) and CAP over MQTT."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from lxml import etree

from config.topics import DEADLETTER, READINGS, WARNINGS
from sensors.scenario import load_scenario
from sensors.simulator import plan
from tests.e2e.checks import SCENARIO_FILE, audiences, sent_rows, sequences_from, settled
from tests.e2e.conftest import (
    PACKAGED_XSD,
    MqttRecorder,
    Pipeline,
    TopicReader,
    committed_offsets,
    expected_sequences,
    wait_until,
)

CAP_NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}

MALFORMED = [
    ("hw/v1/CH-001/GT-101/reading", b"{not json"),
    ("hw/v1/CH-001/GT-101/reading", b'{"ts": 1795400000000, "v": NaN}'),
    ("hw/v1/CH-001/NOPE-9/reading", b'{"ts": 1795400000000, "v": 1.0}'),
    ("hw/v1/XX-404/batch", b'{"readings": []}'),
]


def xsd() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(PACKAGED_XSD)))


def test_scenario_end_to_end(pipeline: Pipeline, tmp_path: Path) -> None:
    config = pipeline.config
    expected = expected_sequences(SCENARIO_FILE)
    assert len(expected) == 9
    cap = MqttRecorder(pipeline.stack.mqtt_port, "hw/v1/broadcast/+/cap", pipeline.stack.mqtt_login("loudspeaker"))
    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    deadletter = TopicReader(pipeline.stack.kafka_bootstrap, DEADLETTER)
    try:
        messages = plan(config, load_scenario("all"), seed=7)
        pipeline.publish(MALFORMED[:2])
        pipeline.publish(messages)
        pipeline.publish(MALFORMED[2:])

        # 1. warnings: the exact ordered sequence per subject, no more, no less
        n_events = sum(len(v) for v in expected.values())
        wait_until(lambda: sum(map(len, sequences_from(warnings.poll()).values())) >= n_events, 90,
                   f"{n_events} warning events")
        events = [e for e in warnings.records if e["rule"] != "equipment_fault"]
        assert sequences_from(events) == expected
        assert len(events) == n_events, "no event was emitted twice in a clean run"
        for site in {e["site"] for e in events}:
            ts = [e["ts"] for e in events if e["site"] == site]
            assert ts == sorted(ts), f"events of {site} out of order"
        by_episode = defaultdict(list)
        for e in events:
            by_episode[e["episode"]].append(e)
        for eps in by_episode.values():
            assert eps[0]["kind"] == "raised" and eps[-1]["kind"] == "cleared"
            assert len({e["subject"] for e in eps}) == 1

        # 2. SMS through the real twilio client: every routed recipient hears each level of each
        #    episode once (grouped per site within group_wait), and nothing is sent twice
        wait_until(lambda: settled(pipeline, len(expected)), 90, "the outbox to settle")
        rows = sent_rows(pipeline)
        sms_rows = [r for r in rows if r.channel == "sms"]
        assert not [r for r in sms_rows if r.status not in ("sent", "suppressed")], "undelivered notifications"
        provider_ids = {r.provider_id for r in sms_rows if r.status == "sent"}
        sms = pipeline.sms()
        assert {m["sid"] for m in sms} == provider_ids, "the fake received exactly what the outbox sent"
        assert len({(m["to"], m["body"]) for m in sms}) == len(sms), "duplicate SMS"
        heard = Counter((r.episode, r.level, r.recipient) for r in sms_rows if r.status == "sent")
        assert max(heard.values()) == 1, "someone heard the same level of an episode twice"
        for ep, eps in by_episode.items():
            site = eps[0]["site"]
            must = audiences(config, site)
            for level in {e["level"] for e in eps} - {"normal"}:
                got = {r.recipient for r in sms_rows if r.episode == ep and r.level == level}
                assert must[level] <= got, f"{eps[0]['subject']} {level}: missing {must[level] - got}"
            told = {r.recipient for r in sms_rows if r.episode == ep and r.kind != "cleared"}
            cleared = {r.recipient for r in sms_rows if r.episode == ep and r.kind == "cleared"}
            assert cleared == told, f"{eps[0]['subject']}: the all-clear must reach everyone who heard it"
        for m in sms:
            assert "http" not in m["body"]
            if "红色" in m["body"] or "Red" in m["body"]:
                assert int(m["num_segments"]) <= 2, m["body"]
        expected_people = {r.phone for r in config.recipients if r.role != "regulator" or r.tier == "county"}
        expected_people |= {sub.phone for z in config.zones for sub in z.subscribers}
        assert {m["to"] for m in sms} == expected_people

        # 3. CAP: an Alert at red and an all-clear Update per red episode, valid against the XSD
        # one loudspeaker Alert per site and zone (further red episodes of the site are covered
        # by it), and one all-clear when the last of them has cleared
        red_zones = {(eps[0]["site"], z) for eps in by_episode.values() if any(e["level"] == "red" for e in eps)
                     for z in config.affected_zones(eps[0]["site"])}
        wait_until(lambda: len(cap.messages) >= 2 * len(red_zones), 60, "CAP broadcasts")
        schema = xsd()
        alerts, updates = {}, []
        for topic, payload in cap.messages:
            doc = etree.fromstring(payload)
            assert schema.validate(doc), schema.error_log
            zone = topic.split("/")[3]
            assert topic == f"hw/v1/broadcast/{zone}/cap"
            msg_type = doc.findtext("cap:msgType", namespaces=CAP_NS)
            ident = doc.findtext("cap:identifier", namespaces=CAP_NS)
            if msg_type == "Alert":
                alerts[ident] = doc
            else:
                assert msg_type == "Update"
                assert doc.findtext("cap:info/cap:responseType", namespaces=CAP_NS) == "AllClear"
                updates.append(doc.findtext("cap:references", namespaces=CAP_NS))
        assert len(alerts) == len(red_zones) == len(updates)
        for ref in updates:
            assert any(ident in ref for ident in alerts), f"all-clear references no alert: {ref}"

        # 4. malformed input lands in the dead-letter topic with its reason
        wait_until(lambda: len(deadletter.poll()) >= len(MALFORMED), 30, "dead letters")
        reasons = [d["reason"] for d in deadletter.records]
        assert len(reasons) == len(MALFORMED)
        assert reasons[0].startswith("not JSON")
        assert "non-finite" in reasons[1]
        assert "unknown sensor 'NOPE-9'" in reasons[2]
        assert "unknown site 'XX-404'" in reasons[3]
        assert all(d["topic"] and "payload" in d for d in deadletter.records)
    finally:
        cap.close()
        warnings.close()
        deadletter.close()


# the worker commits no offset before the kill: every message of the first half comes again
@pytest.mark.parametrize("service_env", [{"HAZWATCH_RULES_COMMIT_INTERVAL_S": "3600"}])
def test_rules_worker_sigkill_mid_scenario_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    _kill_rules_mid_scenario(pipeline, none_committed=True)


def _kill_rules_mid_scenario(pipeline: Pipeline, *, none_committed: bool) -> None:
    config = pipeline.config
    expected = expected_sequences(SCENARIO_FILE)
    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    deadletter = TopicReader(pipeline.stack.kafka_bootstrap, DEADLETTER)
    try:
        messages = plan(config, load_scenario("all"), seed=11)
        half = len(messages) // 2
        pipeline.publish(messages[:half])
        # some warnings are out: the worker is in the middle of the scenario
        wait_until(lambda: len(warnings.poll()) >= 6, 60, "the first warnings")
        pipeline.procs["rules"].kill()
        if none_committed:  # the new worker is handed every message of the first half again
            assert not any(committed_offsets(pipeline.stack.kafka_bootstrap, "hazwatch-rules", READINGS).values())
        pipeline.restart("rules")  # a new worker recovers the table from its changelog
        pipeline.publish(messages[half:])

        n_events = sum(len(v) for v in expected.values())
        wait_until(lambda: sum(len(v) for v in sequences_from(warnings.poll()).values()) >= n_events,
                   120, f"{n_events} distinct warning events after the restart")
        assert sequences_from(warnings.records) == expected, "a warning was lost or raised again"

        wait_until(lambda: settled(pipeline, len(expected)), 90, "the outbox to settle")
        sms = pipeline.sms()
        assert len({(m["to"], m["body"]) for m in sms}) == len(sms), "an SMS was sent twice"
        rows = [r for r in sent_rows(pipeline) if r.channel == "sms" and r.status == "sent"]
        assert {m["sid"] for m in sms} == {r.provider_id for r in rows}
        heard = Counter((r.episode, r.level, r.recipient) for r in rows)
        assert max(heard.values()) == 1
        # the messages consumed again were recognised by the offsets in the state: none of their
        # readings was dead-lettered as "late" (the scenario has no late or malformed input)
        assert deadletter.poll() == [], deadletter.records[:3]
    finally:
        warnings.close()
        deadletter.close()
