"""The settings of hazwatch's services and what they talk to: Kafka, the database, ingest's limits,
the Twilio SMS account and the CAP identifiers (``hazwatch.yaml``; :class:`config.models.Settings`
gathers them)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, StringConstraints, field_validator, model_validator

from config.models_base import Id, WarningLevel, _Model
from config.topics import MAINTENANCE, PARTITIONS, READINGS

__all__ = ["CapSettings", "DatabaseSettings", "IngestSettings", "KafkaSettings", "SmsSettings"]


class IngestSettings(_Model):
    max_payload_bytes: Annotated[int, Field(gt=0)] = 256 * 1024
    max_future_skew_s: Annotated[float, Field(ge=0)] = 300.0
    """Readings stamped further ahead of the wall clock are rejected."""
    max_age_s: Annotated[float, Field(gt=0)] = 7 * 24 * 3600.0
    """Readings older than this are rejected (data loggers may back-fill up to a week)."""
    inbox_max_messages: Annotated[int, Field(ge=1)] = 200_000
    """Messages ingest holds read and not yet in Kafka; beyond, it leaves MQTT unread (ingest/inbox.py)."""
    shared_group: Id | None = None
    """None: one ingest process with a plain persistent subscription, which Mosquitto keeps across a
    broker restart. A group: several ingest processes share ``$share/<group>/...``; Mosquitto 2.0.11
    forgets a shared subscription when it restarts (docs/ARCHITECTURE.md §12)."""


class KafkaSettings(_Model):
    bootstrap: str = "127.0.0.1:9092"
    replication_factor: Annotated[int, Field(ge=1)] = 1
    """Copies of each hazwatch topic. Production runs 3, with ``min_insync_replicas`` 2."""
    min_insync_replicas: Annotated[int, Field(ge=1)] = 1
    """Copies an ``acks=all`` write must reach before it counts (the topics' ``min.insync.replicas``)."""
    idempotence: bool = True
    """Idempotent producers in the rules worker: a retried send is stored once, and a send is retried
    until Kafka takes it. False only for a broker that refuses aiokafka's InitProducerId request
    (Tansu 0.6, the embedded default, answers it with an unknown error): a send is then given up
    after the producer's request timeout (40 s), and the worker stops and is restarted."""
    partitions: dict[str, Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: dict(PARTITIONS))
    """Partitions per topic: a consumer group of N workers needs at least N. Topics left out keep
    their defaults (config/topics.py)."""

    @field_validator("partitions")
    @classmethod
    def _known_topics(cls, partitions: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(partitions) - set(PARTITIONS))
        if unknown:
            raise ValueError(f"unknown topic(s) {unknown}; known: {sorted(PARTITIONS)}")
        counts = {**PARTITIONS, **partitions}
        if counts[MAINTENANCE] != counts[READINGS]:
            raise ValueError(f"{MAINTENANCE} must have as many partitions as {READINGS} "
                             "(a site's windows live with its readings)")
        return counts

    @model_validator(mode="after")
    def _writable(self) -> KafkaSettings:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(f"min_insync_replicas ({self.min_insync_replicas}) exceeds "
                             f"replication_factor ({self.replication_factor}): no write could succeed")
        return self


class DatabaseSettings(_Model):
    url: str = "sqlite:///hazwatch.db"


class SmsSettings(_Model):
    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: SecretStr = SecretStr("dev-token")
    from_number: Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]
    base_url: str | None = None
    """Overrides the Twilio API base URL (the fake Twilio server in the demo and tests)."""


class CapSettings(_Model):
    sender: str = "hazwatch@emergency.example.cn"
    agency_type: Annotated[str, StringConstraints(pattern=r"^\d{3}$")] = "000"
    """GB/T 35965.1 3-digit issuing-agency type code."""
    unit: Annotated[str, StringConstraints(pattern=r"^\d{3}$")] = "000"
    extension: Annotated[str, StringConstraints(pattern=r"^\d{2}$")] = "00"
    severity: dict[WarningLevel, Literal["Extreme", "Severe", "Moderate", "Minor"]] = {
        "red": "Extreme",
        "orange": "Severe",
        "yellow": "Moderate",
        "blue": "Minor",
    }
