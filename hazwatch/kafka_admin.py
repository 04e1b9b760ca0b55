"""Kafka as hazwatch's own tools ask it: is a broker up, which partitions a topic has, and the
hazwatch topics created before any worker subscribes (the demo, ``hazwatch create-topics``, the
benchmarks and the tests)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

from config.topics import PARTITIONS, READINGS, RULES_CHANGELOGS
from hazwatch.runtime import wait_for

if TYPE_CHECKING:
    from kafka import KafkaConsumer, TopicPartition

__all__ = ["CHANGELOG_CONFIGS", "all_partitions", "create_topics", "kafka_ready", "listening"]


def listening(bootstrap: str) -> bool:
    """Whether every ``host:port`` of ``bootstrap`` accepts a TCP connection. A readiness probe
    tries this before a Kafka client: kafka-python's clients, made while no broker listens yet,
    back off between attempts and noticed a broker listening after 3 s only 8 s after its start."""
    for address in bootstrap.split(","):
        host, port = address.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
        except OSError:
            return False
    return True


def kafka_ready(bootstrap: str) -> bool:
    """Whether the Kafka cluster at ``bootstrap`` answers a metadata request."""
    from kafka import KafkaAdminClient

    if not listening(bootstrap):
        return False
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000, client_id="hw-probe")
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def all_partitions(consumer: KafkaConsumer, topics: Iterable[str], timeout_s: float = 30) -> list[TopicPartition]:
    """Every partition of ``topics``, as the broker reports them (their counts are configuration)."""
    from kafka import TopicPartition

    def known() -> bool:
        return all(consumer.partitions_for_topic(t) for t in topics)

    wait_for(known, timeout_s, f"partitions of {', '.join(topics)}")
    return [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]


CHANGELOG_CONFIGS = {"cleanup.policy": "compact", "segment.ms": "600000", "segment.bytes": "104857600"}
"""The rules changelogs: compacted, and their segments closed every 10 minutes or 100 MiB, so that
compaction can reach them (it never touches the open segment; Kafka's defaults, 7 days and 1 GiB,
would let a restore read a week of snapshots)."""


def create_topics(bootstrap: str, partitions: dict[str, int] = PARTITIONS, replication_factor: int = 1,
                  min_insync_replicas: int | None = None, brokers_timeout_s: float = 120) -> None:
    """Create the hazwatch topics if missing (before any worker subscribes: docs/ARCHITECTURE.md §15).

    With ``replication_factor`` above 1 it first waits up to ``brokers_timeout_s`` for that many
    brokers to have joined the cluster: nodes started together register one after another, and a
    topic asked for more replicas than there are brokers is refused."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    configs = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, client_id="hw-setup")
    try:
        if replication_factor > 1:
            wait_for(lambda: len(admin.describe_cluster()["brokers"]) >= replication_factor, brokers_timeout_s,
                     f"{replication_factor} Kafka brokers (replication factor {replication_factor})", poll_s=1)
        existing = set(admin.list_topics())
        missing = [NewTopic(t, n, replication_factor, topic_configs=configs)
                   for t, n in partitions.items() if t not in existing]
        missing += [NewTopic(t, partitions[READINGS], replication_factor,
                             topic_configs={**configs, **CHANGELOG_CONFIGS})
                    for t in RULES_CHANGELOGS if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
        wait_for(lambda: set(partitions) <= set(admin.list_topics()), 20, "topic creation")
    finally:
        admin.close()
