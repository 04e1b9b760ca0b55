"""Ingest's Kafka producer: librdkafka through confluent-kafka, beside kafka-python.

Why not kafka-python here, as everywhere else in hazwatch: ingest waits for every micro-batch's
records before it acknowledges them to the MQTT broker, so its records go out in small rounds.
Measured on the two-core benchmark machine against Apache Kafka (docs/BENCHMARKS.md §5), rounds
of 20 records of 1.4 KB each cost kafka-python 135 µs of CPU per record (its record builder,
sender thread and a wake-up per new batch, all in Python) and librdkafka 27-31 µs. Ingest is the
pipeline's costliest service; the producer was most of it.

The guarantees are the same as before (:mod:`ingest.delivery`): ``acks=all``, an idempotent
producer (the broker drops the producer's own retries; librdkafka keeps each partition's order),
retried for up to ten minutes before a record is given back, then sent again by
:func:`ingest.delivery.deliver`. A fatal producer error (librdkafka's idempotence state lost)
makes :attr:`Producer.broken` true; the caller then replaces the producer.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import Producer as _Librdkafka

__all__ = ["PERMANENT", "Pending", "Producer", "permanent"]

log = logging.getLogger("hazwatch.ingest.kafka")

#: Errors that sending the same record again can never cure: the record is dead-lettered instead.
PERMANENT = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG, KafkaError.INVALID_RECORD,
                       KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE})


class Pending:
    """One record's delivery, as :func:`ingest.delivery.deliver` waits for it: ``is_done``,
    ``failed()``, ``exception`` and ``get(timeout)`` (which serves the producer's callbacks)."""

    __slots__ = ("_owner", "error", "is_done")

    def __init__(self, owner: Producer) -> None:
        self._owner = owner
        self.error: KafkaError | None = None
        self.is_done = False

    def _report(self, error: KafkaError | None, _message: object) -> None:
        self.error = error
        self.is_done = True
        if error is not None and error.fatal():
            self._owner.broken = True

    def get(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the broker's answer (never raises: see :meth:`failed`)."""
        deadline = time.monotonic() + timeout
        while not self.is_done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._owner.poll(remaining)

    def failed(self) -> bool:
        return self.is_done and self.error is not None

    @property
    def exception(self) -> KafkaException | None:
        return KafkaException(self.error) if self.error is not None else None


class Producer:
    """A librdkafka producer with ingest's delivery settings."""

    def __init__(self, bootstrap: str, *, client_id: str, max_block_s: float = 5.0) -> None:
        self.broken = False
        self._max_block_s = max_block_s
        self._producer = _Librdkafka({
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            # a site's key to the partition kafka-python and aiokafka give it (Java's murmur2):
            # the rules worker owns a site, its state and its maintenance windows by that partition
            # (rules.changelog.partition_of). librdkafka's own default hashes with CRC-32.
            "partitioner": "murmur2_random",
            "acks": "all",
            "enable.idempotence": True,  # a retried batch is stored once, and in order
            "linger.ms": 5,
            # how long librdkafka retries a record by itself before giving it back as failed:
            # long, since a record given back is sent again (ingest.delivery)
            "message.timeout.ms": 600_000,
            "request.timeout.ms": 30_000,
            "logger": log,
        })

    def connect(self, timeout_s: float) -> bool:
        """Fetch the cluster's metadata (and so open a connection, on which librdkafka asks for
        its idempotent producer id); False when no broker answered within ``timeout_s``. Ingest
        does this before it reads MQTT: the first micro-batch of a cold producer waited about
        0.5 s, long enough for another ingest process to put a site's next message before it."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def send(self, topic: str, key: bytes | None, value: bytes) -> Pending:
        """Queue one record; raises KafkaException (a record no broker will take: see
        :data:`PERMANENT`) or BufferError (no room for ``max_block_s``)."""
        pending = Pending(self)
        deadline = time.monotonic() + self._max_block_s
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=pending._report)
                return pending
            except BufferError:  # librdkafka's queue is full: make room by serving deliveries
                if time.monotonic() >= deadline:
                    raise
                self._producer.poll(0.1)
            except KafkaException as exc:
                if exc.args[0].fatal():
                    self.broken = True
                raise

    def poll(self, timeout: float) -> None:
        self._producer.poll(timeout)

    def close(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for what is queued (what is left is never acknowledged to
        the MQTT broker, which sends it again)."""
        self._producer.flush(timeout)


def permanent(exc: BaseException) -> bool:
    """True for a librdkafka error that sending the same record again can never cure."""
    return isinstance(exc, KafkaException) and exc.args[0].code() in PERMANENT
