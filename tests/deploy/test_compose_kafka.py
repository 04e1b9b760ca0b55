"""Kafka in docker-compose: three KRaft nodes (docker-compose.yml, the production layout) and one
node (with docker-compose.single.yml over it), each consistent with itself and with the code."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.deploy.compose import (
    LAYOUTS,
    Services,
    active,
    dotenv,
    env_of,
    hazwatch_services,
    interpolate,
    layout,
    listeners,
    volumes_of,
)

NODES = ("kafka-1", "kafka-2", "kafka-3")
#: Replication settings of each layout: (nodes, replication factor, min.insync.replicas).
EXPECTED = {"three-nodes": (NODES, 3, 2), "single": (("kafka-1",), 1, 1)}


def _kafka_nodes(services: Services) -> Services:
    return {n: s for n, s in services.items() if str(s.get("image", "")).startswith("apache/kafka:")}


@pytest.mark.parametrize("name", LAYOUTS)
def test_kafka_runs_kraft_nodes_that_form_one_quorum(name: str) -> None:
    services = layout(name)["services"]
    nodes, factor, min_isr = EXPECTED[name]
    running = _kafka_nodes(active(services))
    assert tuple(sorted(running)) == nodes
    assert set(_kafka_nodes(services)) == set(NODES), "the single layout keeps kafka-2/3, in a profile"
    assert not any("zookeeper" in n.lower() for n in services)
    ids: dict[int, str] = {}
    voters, cluster_ids, controller_ports = set(), set(), {}
    for node, s in running.items():
        assert re.fullmatch(r"apache/kafka:3\.9\.\d+", s["image"]), "pin a 3.9.x tag"
        env = env_of(s)
        assert not any("ZOOKEEPER" in v for v in env)
        assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
        ids[int(env["KAFKA_NODE_ID"])] = node
        (controller,) = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
        controller_ports[node] = listeners(env["KAFKA_LISTENERS"])[controller][1]
        voters.add(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        # the advertised broker address is this node's service name
        advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        assert {host for host, _ in advertised.values()} == {node}
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        factors = {k: v for k, v in env.items() if k.endswith("REPLICATION_FACTOR")}
        mins = {k: v for k, v in env.items() if k.endswith(("MIN_ISR", "MIN_INSYNC_REPLICAS"))}
        assert {"KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"} <= set(factors)
        assert {"KAFKA_MIN_INSYNC_REPLICAS", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"} <= set(mins)
        assert set(factors.values()) == {str(factor)}, factors
        assert set(mins.values()) == {str(min_isr)}, mins
        assert int(env["KAFKA_LOG_RETENTION_HOURS"]) == 7 * 24  # the replay buffer (see the file)
        cluster_ids.add(env["CLUSTER_ID"])
        assert env["KAFKA_LOG_DIRS"] in {t for _, t, _ in volumes_of(s)}, "kafka data not on a volume"
        assert "healthcheck" in s
    # one quorum: every node lists every running node as a voter, at its controller listener
    (voter_list,) = voters
    expected = {f"{i}@{node}:{controller_ports[node]}" for i, node in ids.items()}
    assert set(voter_list.split(",")) == expected
    assert sorted(ids) == list(range(1, len(nodes) + 1))
    # one cluster id, a UUID in URL-safe base64 without padding
    (cluster_id,) = cluster_ids
    raw = base64.urlsafe_b64decode(cluster_id + "==")
    assert len(raw) == 16 and base64.urlsafe_b64encode(raw).decode().rstrip("=") == cluster_id
    # every node keeps its own data
    volumes = [src for s in running.values() for src, _, _ in volumes_of(s)]
    assert len(volumes) == len(set(volumes)) == len(nodes)


@pytest.mark.parametrize("name", LAYOUTS)
def test_every_hazwatch_service_finds_the_running_nodes(name: str) -> None:
    services = active(layout(name)["services"])
    nodes, _, _ = EXPECTED[name]
    brokers: set[tuple[str, int]] = set()
    for node in nodes:
        env = env_of(services[node])
        controllers = set(env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
        advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        bound = listeners(env["KAFKA_LISTENERS"])
        for listener, address in advertised.items():
            assert listener not in controllers and bound[listener][1] == address[1], node
            brokers.add(address)
    for service, s in hazwatch_services(services).items():
        bootstrap = interpolate(env_of(s)["HAZWATCH_KAFKA_BOOTSTRAP"], dotenv())
        named = {(h, int(p)) for h, _, p in (a.rpartition(":") for a in bootstrap.split(","))}
        assert named == brokers, f"{name}: {service} bootstraps from {bootstrap}"
        # kafka-1 runs in both layouts: the services wait for it (and kafka-init for the rest)
        assert set(s["depends_on"]) & set(nodes) == {"kafka-1"}, service


@pytest.mark.parametrize("name", LAYOUTS)
def test_kafka_init_creates_every_topic_with_the_layouts_replication(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-init runs `hazwatch create-topics` with its environment: that calls create_topics with
    the bootstrap, the configuration's partitions and the layout's replication settings."""
    import hazwatch.kafka_admin
    from config import example_dir, load_config
    from config.loader import ENV_OVERRIDES
    from hazwatch.cli import app

    init = layout(name)["services"]["kafka-init"]
    assert init.get("restart") == "no"
    nodes, factor, min_isr = EXPECTED[name]
    assert init["depends_on"] == {"kafka-1": {"condition": "service_healthy"}}
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(hazwatch.kafka_admin, "create_topics", lambda *args, **kw: calls.append((*args, kw)))
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(f"{var}_FILE", raising=False)
    env = {k: interpolate(v, dotenv()) for k, v in env_of(init).items()}
    command = [str(a) for a in init["command"]]
    command[command.index("--config") + 1] = str(example_dir())  # the image's /etc/hazwatch
    result = CliRunner().invoke(app, command, env=env)
    assert result.exit_code == 0, result.output
    kafka = load_config(example_dir()).settings.kafka
    assert calls == [(env["HAZWATCH_KAFKA_BOOTSTRAP"], kafka.partitions, factor, min_isr, {})]
    assert len(env["HAZWATCH_KAFKA_BOOTSTRAP"].split(",")) == len(nodes)


def test_create_topics_waits_for_as_many_brokers_as_replicas() -> None:
    import inspect

    from hazwatch.kafka_admin import create_topics

    source = inspect.getsource(create_topics)
    assert "describe_cluster" in source and "replication_factor" in source
    assert inspect.signature(create_topics).parameters["brokers_timeout_s"].default >= 60


def test_the_single_node_file_only_adds_to_what_it_overrides() -> None:
    """An override merges into the base: it can change values and add keys, never remove a service
    or a dependency. So it names only services the base has, and changes only environments and
    profiles."""
    import yaml

    from tests.deploy.compose import COMPOSE_FILE, SINGLE_FILE

    base = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    override = yaml.safe_load(SINGLE_FILE.read_text(encoding="utf-8"))["services"]
    assert set(override) <= set(base)
    for service, s in override.items():
        assert set(s) <= {"environment", "profiles"}, service
    assert {n for n, s in override.items() if "profiles" in s} == {"kafka-2", "kafka-3"}
    for node in ("kafka-2", "kafka-3"):  # a profile nobody activates, and nobody waits for
        assert override[node]["profiles"] == ["three-nodes"]
        assert not any(node in (s.get("depends_on") or {}) for s in base.values())
