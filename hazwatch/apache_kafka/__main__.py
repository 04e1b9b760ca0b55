"""``python -m hazwatch.apache_kafka fetch``: put the pinned broker jars into the cache (``make kafka``)."""

from __future__ import annotations

import sys

from hazwatch.apache_kafka.jars import KAFKA_VERSION, JarsMissingError, ensure_jars


def main(argv: list[str]) -> int:
    if argv != ["fetch"]:
        print("usage: python -m hazwatch.apache_kafka fetch", file=sys.stderr)
        return 2
    try:
        libs = ensure_jars()
    except JarsMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Apache Kafka {KAFKA_VERSION}: {sum(1 for _ in libs.glob('*.jar'))} jars in {libs}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
