"""Scale-out on Apache Kafka: two of each service, and a rules worker that leaves and comes back.

Two ingest processes share the MQTT subscription (distinct client ids), two rules workers share the
readings partitions in one consumer group, two alerts processes share the warnings and one
PostgreSQL outbox. The devices publish at the scenario's own pace (a sensor's consecutive readings
are a second or more apart, as in the field). Each test asserts the exact ordered warning events
per subject, every SMS exactly once, and every published reading in Kafka exactly once and
consumed by the rules workers.
"""

from __future__ import annotations

import time

import pytest

from config.topics import DEADLETTER, WARNINGS
from hazwatch.runtime import free_port
from sensors.scenario import load_scenario
from sensors.simulator import plan
from tests.e2e.checks import assert_nothing_lost_or_twice, publish_paced, took
from tests.e2e.conftest import E2E_SETTINGS, Pipeline, TopicReader, wait_until


@pytest.fixture
def service_env(postgres_env: dict[str, str]) -> dict[str, str]:
    return postgres_env  # the alerts processes share one PostgreSQL outbox


@pytest.fixture
def settings_patch() -> dict:
    """The ingest processes share one MQTT subscription ($share/hazwatch-ingest/...)."""
    return {**E2E_SETTINGS, "ingest": {"shared_group": "hazwatch-ingest"}}


def scale_out(pipeline: Pipeline) -> None:
    """A second ingest, rules worker and alerts process beside the first ones."""
    pipeline.start("ingest-2", "ingest", "--client-id", "hazwatch-ingest-2")
    pipeline.start("rules-2", "rules")
    pipeline.start("alerts-2", "alerts", env={"HAZWATCH_ALERTS_HTTP_PORT": str(free_port())})


def test_two_of_each_service_with_a_rules_worker_stopped_and_started_mid_scenario(pipeline: Pipeline) -> None:
    scale_out(pipeline)
    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    deadletter = TopicReader(pipeline.stack.kafka_bootstrap, DEADLETTER)
    try:
        messages = plan(pipeline.config, load_scenario("all"), seed=21)
        third = len(messages) // 3
        at = publish_paced(pipeline, messages[:third])
        at += took(lambda: pipeline.procs["rules-2"].stop())  # clean stop: its partitions and state move
        publish_paced(pipeline, messages[third:2 * third], at=at)
        at += took(lambda: pipeline.start("rules-2", "rules"))  # and back
        publish_paced(pipeline, messages[2 * third:], at=at)
        assert_nothing_lost_or_twice(pipeline, messages, warnings, deadletter)
    finally:
        warnings.close()
        deadletter.close()


def group_state(bootstrap: str, group: str) -> str:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="e2e-groups")
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return str(described.get("group_state") or described.get("state"))


def test_rules_worker_sigkilled_during_a_rebalance(pipeline: Pipeline) -> None:
    warnings = TopicReader(pipeline.stack.kafka_bootstrap, WARNINGS)
    deadletter = TopicReader(pipeline.stack.kafka_bootstrap, DEADLETTER)
    bootstrap = pipeline.stack.kafka_bootstrap
    try:
        messages = plan(pipeline.config, load_scenario("all"), seed=23)
        half = len(messages) // 2
        at = publish_paced(pipeline, messages[:half])
        started = time.monotonic()
        joining = pipeline.start("rules-2", "rules", wait=False)  # its join starts a rebalance
        ready = pipeline.stack.workdir / "rules-2.ready"
        # SIGKILL the first worker while the group rebalances (or, on a machine too slow to catch
        # the group in that state, right after the second worker joined): its partitions and their
        # state must reach the second worker, which has not finished joining yet
        wait_until(lambda: group_state(bootstrap, "hazwatch-rules") in ("PreparingRebalance", "CompletingRebalance")
                   or ready.exists() or not joining.alive(), 120, "the group to rebalance")
        pipeline.procs["rules"].kill()
        wait_until(lambda: ready.exists() or not joining.alive(), 120, "the second worker ready")
        assert joining.alive(), joining.log_tail()
        at += time.monotonic() - started
        publish_paced(pipeline, messages[half:], at=at)
        pipeline.restart("rules")  # its supervisor brings the killed worker back: one more rebalance
        assert_nothing_lost_or_twice(pipeline, messages, warnings, deadletter)
    finally:
        warnings.close()
        deadletter.close()
