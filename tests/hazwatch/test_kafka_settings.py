"""Kafka partitions and replication as configuration, the embedded Kafka's choice, and the
Apache Kafka jar cache (pure: no broker is started here; the end-to-end tests start them)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from config.loader import ConfigError, example_dir, load_config
from config.models import KafkaSettings
from config.topics import DEADLETTER, MAINTENANCE, PARTITIONS, READINGS
from hazwatch.apache_kafka import jars
from hazwatch.cli import app
from hazwatch.runtime import EmbeddedStack


def test_defaults_allow_twelve_workers_and_one_copy() -> None:
    kafka = KafkaSettings()
    assert kafka.partitions[READINGS] == kafka.partitions[MAINTENANCE] == 12
    assert kafka.partitions[DEADLETTER] == 1
    assert set(kafka.partitions) == set(PARTITIONS)
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (1, 1)


def test_named_topics_change_the_rest_keep_their_defaults() -> None:
    kafka = KafkaSettings(partitions={READINGS: 24, MAINTENANCE: 24}, replication_factor=3, min_insync_replicas=2)
    assert kafka.partitions[READINGS] == 24 and kafka.partitions[DEADLETTER] == 1


@pytest.mark.parametrize(("settings", "reason"), [
    ({"partitions": {"hazwatch.reading": 3}}, "unknown topic(s) ['hazwatch.reading']"),
    ({"partitions": {READINGS: 24}}, "must have as many partitions as hazwatch.readings"),
    ({"partitions": {READINGS: 0, MAINTENANCE: 0}}, "greater than or equal to 1"),
    ({"replication_factor": 1, "min_insync_replicas": 2}, "exceeds replication_factor (1): no write could succeed"),
])
def test_impossible_kafka_settings_are_refused_with_a_reason(settings: dict, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        KafkaSettings(**settings)


def test_replication_from_the_environment_is_validated_like_the_file() -> None:
    env = {"HAZWATCH_KAFKA_REPLICATION_FACTOR": "3", "HAZWATCH_KAFKA_MIN_INSYNC_REPLICAS": "2"}
    kafka = load_config(example_dir(), env=env).settings.kafka
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, 2)
    with pytest.raises(ConfigError, match="kafka: .*min_insync_replicas \\(2\\) exceeds"):
        load_config(example_dir(), env={"HAZWATCH_KAFKA_MIN_INSYNC_REPLICAS": "2"})


def test_an_unknown_embedded_kafka_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'kafak' is none of tansu, apache"):
        EmbeddedStack(tmp_path, kafka="kafak")
    monkeypatch.setenv("HAZWATCH_KAFKA", "redpanda")
    with pytest.raises(ValueError, match="'redpanda' is none of tansu, apache"):
        EmbeddedStack(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--kafka", "kafak"])
    assert result.exit_code == 2 and "is none of tansu, apache" in result.output


def test_the_pinned_version_is_read_from_the_pom() -> None:
    assert jars.KAFKA_VERSION.startswith("4.")
    assert f"kafka-{jars.KAFKA_VERSION}" in str(jars.jars_dir())


def test_a_complete_cache_is_used_without_maven(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HAZWATCH_KAFKA_CACHE", str(tmp_path))
    monkeypatch.setattr(jars.shutil, "which", lambda _name: None)  # no Maven on this machine
    with pytest.raises(jars.JarsMissingError, match="Maven \\(mvn\\) is not installed"):
        jars.ensure_jars()
    libs = jars.jars_dir()
    libs.mkdir(parents=True)
    (libs / f"kafka_2.13-{jars.KAFKA_VERSION}.jar").write_bytes(b"")
    with pytest.raises(jars.JarsMissingError):  # an interrupted copy: no COMPLETE marker
        jars.ensure_jars()
    (libs / "COMPLETE").write_text(jars.KAFKA_VERSION)
    assert jars.ensure_jars() == libs


def test_the_embedded_tansu_stack_turns_idempotence_off_for_its_services(tmp_path: Path) -> None:
    """Tansu 0.6 answers aiokafka's InitProducerId with an unknown error; Apache Kafka keeps it on."""
    assert load_config(example_dir()).settings.kafka.idempotence is True
    tansu = EmbeddedStack(tmp_path, kafka="tansu").env()
    assert load_config(example_dir(), env=tansu).settings.kafka.idempotence is False
    assert "HAZWATCH_KAFKA_IDEMPOTENCE" not in EmbeddedStack(tmp_path, kafka="apache").env()
