"""Suite-wide defaults.

End-to-end tests run on Apache Kafka (KRaft, from its Maven Central jars: ``make kafka`` caches
them). ``HAZWATCH_KAFKA=tansu`` runs them on the memory-only broker instead, for a quick look on a
machine without Java; the demo test runs on Tansu always, so that the embedded default stays honest.
"""

from __future__ import annotations

import os

os.environ.setdefault("HAZWATCH_KAFKA", "apache")
