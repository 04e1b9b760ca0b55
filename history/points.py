"""What the history store keeps, as InfluxDB line protocol. Pure.

Measurements (docs/OPERATIONS.md "History"):

- ``reading``: fields ``v`` (float) and ``q`` (integer quality, 0 good); tags ``site``, ``sensor``,
  ``quantity``, ``unit``, ``enterprise``, ``region`` (GB/T 2260 code); time = the reading's ``ts``.
- ``warning``: fields ``value`` (float) and ``level_rank`` (0 normal .. 4 red); tags ``site``,
  ``subject``, ``rule``, ``episode``, ``kind`` (raised, escalated, deescalated, cleared), ``level``,
  ``enterprise``, ``region``; time = the deciding reading's ``ts``. Warnings are rare, so the
  episode id is a tag (one short series per episode).
- ``quality``: field ``fault`` (1 entering, 0 leaving); tags ``site``, ``sensor``, ``check``
  (offline, stuck, range, spike); time = the event's ``ts``.
- ``presence``: field ``online`` (1 or 0); tag ``site``; time = when ingest received it.

Every field is a number: VictoriaMetrics keeps only numbers. Timestamps are epoch milliseconds
(``precision=ms``).

A line is its measurement and tags, made once per series with influxdb-client's ``Point`` (its
escaping), followed by the fields (sorted, floats without a trailing ``.0``) and the time, exactly
as ``Point`` writes them (tests/history/test_points.py): a ``Point`` per reading cost 14.5 µs,
these lines 1 µs (50-reading records, this machine).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from influxdb_client import Point

from config.models import LEVELS, Config
from config.topics import HEALTH, READINGS, WARNINGS
from formats.health import HealthEvent, Presence
from formats.health import decode as decode_health
from formats.readings import Readings
from formats.readings import decode as decode_readings
from formats.warning import WarningEvent

__all__ = ["Lines"]


def _prefix(measurement: str, tags: dict[str, str]) -> str:
    """``measurement,tag=value,...`` with influxdb-client's escaping."""
    point = Point(measurement)
    for key, value in tags.items():
        if value:
            point.tag(key, value)
    line = point.field("_", 0).time(0).to_line_protocol()
    return line[: line.rindex(" _=")]


def _float(v: object) -> str:
    """A float field as ``Point`` writes it (no trailing ``.0``)."""
    text = repr(float(v))  # type: ignore[arg-type]
    return text[:-2] if text.endswith(".0") else text


class Lines:
    """Turns records of ``hazwatch.readings``, ``hazwatch.warnings`` and ``hazwatch.health`` into
    line-protocol lines; a record it cannot read yields none (it is the pipeline's, already checked)."""

    def __init__(self, config: Config) -> None:
        self.sites = {s.id: s for s in config.sites}
        self.sensors = {(s.id, x.id): x for s in config.sites for x in s.sensors}
        self._prefixes: dict[tuple[str, ...], str] = {}

    def _series(self, measurement: str, site: str, *, cache: bool = True, **tags: str) -> str:
        """The series' prefix; kept for the series of readings, quality and presence (bounded by the
        configuration), not for warnings (one per episode and level change)."""
        key = (measurement, site, *tags.values())
        prefix = self._prefixes.get(key)
        if prefix is None:
            s = self.sites.get(site)
            extra = {"enterprise": s.enterprise, "region": s.region} if s is not None else {}
            prefix = _prefix(measurement, {"site": site, **tags, **extra})
            if cache:
                self._prefixes[key] = prefix
        return prefix

    def of(self, topic: str, value: bytes) -> list[str]:
        try:
            if topic == READINGS:
                return list(self._readings(decode_readings(value)))
            if topic == WARNINGS:
                return [self._warning(WarningEvent.from_json(value))]
            if topic == HEALTH:
                return [self._health(decode_health(value))]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return []
        return []

    def _readings(self, r: Readings) -> Iterable[str]:
        site = r.site
        for sensor, ts, v, q in zip(r.sensor, r.ts, r.v, r.q, strict=True):
            prefix = self._prefixes.get(("reading", site, sensor))
            if prefix is None:
                x = self.sensors.get((site, sensor))
                prefix = self._series("reading", site, sensor=sensor, quantity=x.quantity if x else "",
                                      unit=x.unit if x else "")
                self._prefixes[("reading", site, sensor)] = prefix
            yield f"{prefix} q={int(q)}i,v={_float(v)} {int(ts)}"

    def _warning(self, w: WarningEvent) -> str:
        prefix = self._series("warning", w.site, cache=False, subject=w.subject, rule=w.rule,
                              episode=str(w.episode), kind=w.kind, level=w.level)
        return f"{prefix} level_rank={LEVELS.index(w.level)}i,value={_float(w.value)} {int(w.ts)}"

    def _health(self, h: HealthEvent) -> str:
        if isinstance(h, Presence):
            return f"{self._series('presence', h.site)} online={int(h.status == 'online')}i {int(h.ts)}"
        prefix = self._series("quality", h.site, sensor=h.sensor, check=h.check)
        return f"{prefix} fault={int(h.state == 'fault')}i {int(h.ts)}"
