"""Apache Kafka (KRaft) on loopback, from its Maven Central jars: for the tests and ``--kafka apache``.

- :mod:`.jars` resolves the pinned broker jars with Maven, once, into a cache folder;
- :mod:`.cluster` formats and starts one node or a cluster of three, waits until the broker says
  that every node is up, and kills, pauses or restarts a node for fault tests.
"""

from hazwatch.apache_kafka.cluster import ApacheKafka, KafkaNode
from hazwatch.apache_kafka.jars import KAFKA_VERSION, JarsMissingError, ensure_jars, jars_dir

__all__ = ["KAFKA_VERSION", "ApacheKafka", "JarsMissingError", "KafkaNode", "ensure_jars", "jars_dir"]
