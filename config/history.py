"""Settings of the history writer (``hazwatch history``): where readings, warnings and health
events are kept for 30 days and more (an InfluxDB 2 server, or anything that takes its v2 write
API, such as VictoriaMetrics)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr

from config.models_base import _Model

__all__ = ["HistorySettings"]


class HistorySettings(_Model):
    url: str | None = None
    """The store's base URL (``http://influxdb:8086``); None: no history is written."""
    store: Literal["influxdb", "victoriametrics"] = "influxdb"
    """How the console reads it back (both take the same writes)."""
    org: str = "hazwatch"
    bucket: str = "hazwatch"
    token: SecretStr = SecretStr("")
    """InfluxDB's API token (VictoriaMetrics needs none)."""
    batch_records: Annotated[int, Field(ge=1, le=100_000)] = 5000
    """Kafka records per write at most."""
