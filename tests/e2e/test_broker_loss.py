"""A lost broker and a hung one, on a three-node Apache Kafka cluster (replication factor 3,
``min.insync.replicas`` 2, ``acks=all``, idempotent producers).

Mid-scenario, the node that leads most readings partitions is SIGKILLed and later started again on
its own storage; then another node is SIGSTOPped for 30 s and resumed. Nothing may be lost or
doubled: the exact warning sequences, every SMS once, every reading in Kafka once and evaluated,
and every service recovers by itself (the fixture checks that none died).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from config.topics import DEADLETTER, READINGS, WARNINGS
from sensors.scenario import load_scenario
from sensors.simulator import plan
from tests.e2e.checks import assert_nothing_lost_or_twice, planned_readings, publish_paced, readings_in_kafka
from tests.e2e.conftest import Pipeline, TopicReader, wait_until

PAUSE_S = 30.0


@pytest.fixture
def kafka_nodes() -> int:
    return 3


@pytest.fixture
def service_env(postgres_env: dict[str, str]) -> dict[str, str]:
    return postgres_env


def test_a_killed_leader_and_a_paused_node_lose_and_double_nothing(pipeline: Pipeline) -> None:
    cluster = pipeline.stack.apache
    assert cluster is not None and len(cluster.nodes) == 3
    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    deadletter = TopicReader(pipeline.stack.kafka_bootstrap, DEADLETTER)
    try:
        messages = plan(pipeline.config, load_scenario("all"), seed=31)
        third = len(messages) // 3
        at = publish_paced(pipeline, messages[:third])

        # 1. SIGKILL the node that leads most readings partitions; the scenario goes on
        victim = Counter(cluster.leaders(READINGS).values()).most_common(1)[0][0]
        cluster.kill(victim)
        publish_paced(pipeline, messages[third:2 * third], at=at)
        cluster.restart(victim)  # on its own storage: it catches up as a follower
        wait_until(cluster.all_brokers_up, 120, f"node {victim} back in the cluster")

        # 2. SIGSTOP another node for PAUSE_S (the fault lasts that long; nothing waits on it)
        hung = next(n.node_id for n in cluster.nodes if n.node_id != victim)
        paused = time.monotonic()
        cluster.pause(hung)
        try:
            publish_paced(pipeline, messages[2 * third:], at=at)
            time.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused)))
        finally:
            cluster.resume(hung)

        assert_nothing_lost_or_twice(pipeline, messages, warnings, deadletter)
        stored, _ = readings_in_kafka(pipeline.stack.kafka_bootstrap)
        sms = pipeline.sms()
        print(f"\nbroker loss: node {victim} killed, node {hung} paused {PAUSE_S:.0f} s; readings published "
              f"{len(planned_readings(messages))}, in Kafka {sum(stored.values())} ({len(stored)} distinct), "
              f"warning events {len(warnings.records)}, SMS {len(sms)}")
    finally:
        warnings.close()
        deadletter.close()
