"""Kafka topic names and partition counts (docs/ARCHITECTURE.md §14.3).

Partition counts bound how many workers of a consumer group share the load: a site's readings,
state and warnings live on one partition (keyed by site id), so 12 partitions allow up to 12
workers. These are the defaults; ``kafka.partitions`` in hazwatch.yaml changes them.
"""

from __future__ import annotations

__all__ = ["CONTROL", "DEADLETTER", "DELIVERIES", "HEALTH", "MAINTENANCE", "NOTIFICATIONS", "PARTITIONS", "READINGS",
           "RULES_CHANGELOGS", "WARNINGS"]

READINGS = "hazwatch.readings"
WARNINGS = "hazwatch.warnings"
HEALTH = "hazwatch.health"
DEADLETTER = "hazwatch.deadletter"
NOTIFICATIONS = "hazwatch.notifications"
DELIVERIES = "hazwatch.deliveries"
MAINTENANCE = "hazwatch.maintenance"
CONTROL = "hazwatch.control"

PARTITIONS: dict[str, int] = {
    READINGS: 12,
    WARNINGS: 12,
    HEALTH: 12,
    DEADLETTER: 1,  # low volume; one partition keeps rejects in arrival order
    NOTIFICATIONS: 12,
    DELIVERIES: 12,
    CONTROL: 1,  # reload requests and their outcomes (hazwatch/control.py), read by every process
}
# Runtime maintenance windows, keyed by site id like the readings and with as many partitions: the
# worker that owns a site's readings owns its windows (faust assigns co-partitioned topics together).
PARTITIONS[MAINTENANCE] = PARTITIONS[READINGS]

#: The changelog topics of the rules worker's faust tables (``<app id>-<table>-changelog``),
#: compacted, with the readings' partitions. Created up front with the topics above: faust declares
#: them itself at start, but a table whose changelog did not exist yet when the group first
#: assigned partitions was left out of that assignment ("Ignoring missing topic"), and its writes
#: were not recovered until a later rebalance (seen on Apache Kafka).
RULES_CHANGELOGS = ("hazwatch-rules-threshold-state-changelog", "hazwatch-rules-maintenance-windows-changelog")
