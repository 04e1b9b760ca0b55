"""What the alerts service tells operators about itself: its health checks and the outbox metric.

- ``database_check``: the audit store answers ``SELECT 1``.
- ``OutboxCollector``: ``hazwatch_alerts_notifications{channel,status}``, the outbox rows per
  channel and status, counted by the database at each scrape: its depth (``pending``,
  ``sending``, ``unknown``) and the outcomes (``sent``, ``delivered``, ``failed``, ...). Counted
  by the store, it is the same whichever alerts process answers and survives restarts.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from alerts.store import Notification, Store

__all__ = ["OUTBOX", "OutboxCollector", "database_check"]


def database_check(store: Store) -> str | None:
    try:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001 - whatever it is, the store did not answer
        return f"the database did not answer: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


class OutboxCollector(Collector):
    """Counts the outbox of the store of the running alerts service (:meth:`watch`), if any."""

    def __init__(self) -> None:
        self.stores: list[Store] = []

    def watch(self, store: Store) -> None:
        self.stores.append(store)

    def forget(self, store: Store) -> None:
        if store in self.stores:
            self.stores.remove(store)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("hazwatch_alerts_notifications",
                                   "Outbox rows by channel and status (pending, sending and unknown are its depth)",
                                   labels=["channel", "status"])
        if not self.stores:
            yield family
            return
        try:
            with self.stores[0].session() as s:
                rows = s.execute(select(Notification.channel, Notification.status, func.count())
                                 .group_by(Notification.channel, Notification.status)).all()
        except Exception:  # noqa: BLE001 - no store, no figure: /healthz says why
            rows = []
        for channel, status, n in rows:
            family.add_metric([channel, status], n)
        yield family


OUTBOX = OutboxCollector()
REGISTRY.register(OUTBOX)
