"""``hazwatch.readings``: one record per site and micro-batch, columnar (docs/ARCHITECTURE.md §14.3)::

    {"site": "CH-001", "sensor": ["GT-101", "GT-102"], "ts": [1796000000000, 1796000000000],
     "v": [12.5, 3.0], "q": [0, 0], "i": [0, 1], "cfg": "3f9a0c..."}

``ts`` epoch ms, ``v`` the value in the sensor's unit, ``q`` the quality (0 good), ``i`` each
sensor's dense index in the writer's configuration and ``cfg`` that configuration's sensor
fingerprint (``config.models.Config.sensor_fingerprint``): a reader on the same configuration
needs no lookup. ``q``, ``i`` and ``cfg`` may be missing (an older writer): ``q`` then counts as
good, and the indices as unknown.

Ingest builds and encodes it (:class:`Readings`, :meth:`Readings.encode`); the rules worker, the
console and the history writer decode it (:func:`decode`). Nothing else reads or writes its JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from formats.objects import json_object

__all__ = ["Readings", "ReadingsError", "decode"]


class ReadingsError(ValueError):
    """A ``hazwatch.readings`` value that is not one; the message says why."""


@dataclass
class Readings:
    """The readings of one site, columnar."""

    site: str
    sensor: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    v: list[float] = field(default_factory=list)
    q: list[int] = field(default_factory=list)
    i: list[int] = field(default_factory=list)
    """Dense sensor indices (``Config.sensor_index``), or empty when unknown."""
    cfg: str = ""
    """``Config.sensor_fingerprint`` of the configuration the indices come from."""

    def encode(self) -> bytes:
        return orjson.dumps({"site": self.site, "sensor": self.sensor, "ts": self.ts, "v": self.v, "q": self.q,
                             "i": self.i, "cfg": self.cfg})

    def __len__(self) -> int:
        return len(self.ts)

    def extend(self, other: Readings) -> None:
        """Append ``other``'s readings (of the same site and configuration)."""
        self.sensor += other.sensor
        self.ts += other.ts
        self.v += other.v
        self.q += other.q
        self.i += other.i


def decode(raw: bytes | str) -> Readings:
    """One ``hazwatch.readings`` value; raises :class:`ReadingsError` when it is not one (not
    JSON, not an object, a key missing, a column not a list, columns of different lengths). The
    columns' items are not checked one by one: the columnar reader converts them at once and
    fails on a wrong type there."""
    m = json_object(raw, ReadingsError)
    try:
        site, sensor, ts, v = m["site"], m["sensor"], m["ts"], m["v"]
    except KeyError as exc:
        raise ReadingsError(f"no {exc.args[0]!r}") from None
    q, i = m.get("q"), m.get("i")
    if not isinstance(site, str):
        raise ReadingsError(f"site is not a string: {site!r}")
    n = len(ts) if isinstance(ts, list) else -1
    if q is None and n >= 0:
        q = [0] * n
    for name, column in (("sensor", sensor), ("ts", ts), ("v", v), ("q", q)):
        if not isinstance(column, list):
            raise ReadingsError(f"{name} is not a list")
        if len(column) != n:
            raise ReadingsError("readings message columns differ in length")
    indexed = isinstance(i, list) and len(i) == n
    return Readings(site, sensor, ts, v, q, i if indexed else [], str(m.get("cfg", "")) if indexed else "")
