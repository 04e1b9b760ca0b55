"""Maintenance silences to the rule engine: the ``hazwatch.maintenance`` feed.

A silence of kind ``maintenance`` only holds back notifications in the alerts service. When its
matcher names one site -- ``site``, and optionally ``subject`` ``SITE/SENSOR`` or a prefix such as
``SITE/*`` or ``SITE/GT-*`` -- creating or ending it also publishes a record that the rules worker
keeps per site and that gives the engine's semantics (``rules.maintenance``): readings inside
raise and clear nothing, a ``maintenance`` health event says why, no offline fault. The record
(key: site id, value JSON)::

    {"id": 7, "site": "CH-001", "sensors": ["GT-101"] | [] (the whole site),
     "start_ms": ..., "end_ms": ..., "kind": "maintenance", "reason": "...", "ended": false}

An ended silence sends the same record with ``ended: true`` and ``end_ms`` = when it was ended.
A matcher with a ``rule`` is not an engine window (the engine stops whole sensors, not one rule),
nor one without a site; ``max_level`` does not apply in the engine (nothing is evaluated at all).

The silence is stored first. When Kafka cannot take the record the outcome says so, and
``hazwatch silences publish`` sends the records of the current windows again (the worker keeps
the last record of each silence id, so publishing twice changes nothing).

Used by ``hazwatch silences add|end|publish`` and the console's ``POST /api/silences``.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


from alerts.store import Silence
from config.models import Config
from config.topics import MAINTENANCE
from formats.maintenance import RuntimeWindow, encode

__all__ = ["FeedError", "FeedOutcome", "engine_record", "engine_scope", "publish", "tell_engine"]

log = logging.getLogger("hazwatch.alerts.maintenance")

TIMEOUT_S = 3.0
"""Bounds connecting to Kafka and each acknowledgement: a command waits this long at most once."""


class FeedError(Exception):
    """Kafka did not take the records (unreachable, timed out, refused)."""


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def engine_scope(matcher: Mapping[str, str], config: Config) -> tuple[str, list[str]] | str:
    """``(site, sensors)`` the matcher covers in the engine (``[]``: the whole site), or the reason
    it is not an engine window."""
    if "rule" in matcher:
        return "its matcher names a rule; the engine's windows cover whole sensors"
    subject = matcher.get("subject")
    site = matcher.get("site") or (subject.split("/", 1)[0] if subject and "/" in subject else None)
    if site is None:
        return "its matcher names no site"
    conf = next((s for s in config.sites if s.id == site), None)
    if conf is None:
        return f"site {site!r} is not in the configuration"
    if subject is None or subject in ("*", f"{site}/*"):
        return site, []
    if subject.endswith("*"):
        sensors = [s.id for s in conf.sensors if f"{site}/{s.id}".startswith(subject[:-1])]
    else:
        sensors = [s.id for s in conf.sensors if f"{site}/{s.id}" == subject]
    return (site, sensors) if sensors else f"subject {subject!r} is no sensor of {site}"


def engine_record(silence: Silence, config: Config) -> dict[str, Any] | str:
    """The ``hazwatch.maintenance`` record of a maintenance silence, or why there is none."""
    if silence.kind != "maintenance":
        return "it is not a maintenance window"
    scope = engine_scope(silence.matcher, config)
    if isinstance(scope, str):
        return scope
    ended = silence.ended_at is not None
    end = min(silence.ends_at, silence.ended_at) if silence.ended_at is not None else silence.ends_at
    return RuntimeWindow(silence.id, scope[0], tuple(scope[1]), _ms(silence.starts_at), _ms(end),
                         "maintenance", silence.reason, ended).to_record()


def publish(bootstrap: str, records: Sequence[Mapping[str, Any]], timeout_s: float = TIMEOUT_S) -> None:
    """Send ``records`` to ``hazwatch.maintenance`` (key: site id) and wait until every one is
    acknowledged by all in-sync replicas; :class:`FeedError` otherwise."""
    if not records:
        return
    from kafka import KafkaProducer  # here, not at import: the console and the CLI load this module
    from kafka.errors import KafkaError

    ms = int(timeout_s * 1000)
    _reachable(bootstrap, timeout_s)
    producer = None
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="hazwatch-maintenance",
                                 bootstrap_timeout_ms=ms, max_block_ms=ms, request_timeout_ms=ms,
                                 delivery_timeout_ms=2 * ms, linger_ms=0)
        futures = [producer.send(MAINTENANCE, key=str(r["site"]).encode(), value=encode(RuntimeWindow.from_record(r)))
                   for r in records]
        producer.flush(timeout=2 * timeout_s)
        for f in futures:
            f.get(timeout=timeout_s)
    except (KafkaError, OSError) as exc:
        raise FeedError(f"Kafka at {bootstrap}: {exc.__class__.__name__}: {exc}") from exc
    finally:
        if producer is not None:
            producer.close(timeout=1)


def _reachable(bootstrap: str, timeout_s: float) -> None:
    """Fail at once when no bootstrap server takes a connection (a stopped broker refuses it),
    instead of waiting out the producer's bootstrap timeout."""
    errors = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            socket.create_connection((host.strip("[]") or "localhost", int(port)), timeout=timeout_s).close()
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{server.strip()}: {exc}")
    raise FeedError(f"Kafka at {bootstrap} unreachable ({'; '.join(errors)})")


@dataclass(frozen=True)
class FeedOutcome:
    """What telling the engine about one silence came to."""

    silence_id: int
    told: bool
    record: dict[str, Any] | None
    note: str
    """One sentence for the operator."""

    @property
    def failed(self) -> bool:
        """A window the engine should know about, but Kafka did not take it."""
        return self.record is not None and not self.told

    def as_dict(self) -> dict[str, Any]:
        return {"told": self.told, "record": self.record, "note": self.note}


def tell_engine(config: Config, silences: Silence | Iterable[Silence]) -> list[FeedOutcome]:
    """Publish the engine records of ``silences`` (kind ``silence`` is skipped silently). Never
    raises: a Kafka failure is an outcome (the silences are stored either way)."""
    batch = [silences] if isinstance(silences, Silence) else list(silences)
    out: list[FeedOutcome] = []
    records: list[tuple[Silence, dict[str, Any]]] = []
    for s in batch:
        if s.kind != "maintenance":
            continue
        rec = engine_record(s, config)
        if isinstance(rec, str):
            out.append(FeedOutcome(s.id, False, None, f"rule engine not told about silence {s.id}: {rec}; "
                                                      "it only holds back notifications"))
        else:
            records.append((s, rec))
    if not records:
        return out
    try:
        publish(config.settings.kafka.bootstrap, [r for _, r in records])
    except FeedError as exc:
        log.warning("maintenance windows %s not published: %s", [s.id for s, _ in records], exc)
        ids = " ".join(str(s.id) for s, _ in records)
        return out + [FeedOutcome(s.id, False, rec, f"rule engine NOT told about silence {s.id} ({exc}); "
                                                    "it is stored and holds back notifications, but readings "
                                                    f"are still evaluated: run `hazwatch silences publish {ids}` "
                                                    "once Kafka is back") for s, rec in records]
    return out + [FeedOutcome(s.id, True, rec, _told(rec)) for s, rec in records]


def _told(rec: Mapping[str, Any]) -> str:
    where = ", ".join(f"{rec['site']}/{s}" for s in rec["sensors"]) or f"every sensor of {rec['site']}"
    if rec["ended"]:
        return f"rule engine told ({MAINTENANCE}): the window ended; readings of {where} are evaluated again"
    return f"rule engine told ({MAINTENANCE}): readings of {where} inside the window raise and clear nothing"
