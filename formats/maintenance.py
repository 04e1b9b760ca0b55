"""``hazwatch.maintenance``: a maintenance or calibration window made at run time (a maintenance
silence, from the console or ``hazwatch silences add --maintenance``), one record per change,
keyed by site id::

    {"id": 17, "site": "TD-001", "sensors": ["PZ-01"], "start_ms": 1796000000000,
     "end_ms": 1796003600000, "kind": "calibration", "reason": "piezometer recalibration",
     "ended": false}

``sensors`` empty means the whole site; ``[start_ms, end_ms)`` in epoch ms; ending the silence
early publishes the same record with ``ended: true`` and ``end_ms`` the time it was ended.
Written by the alerts side (alerts/maintenance_feed.py, :func:`encode`), read by the rules worker
(:func:`decode`); the worker keeps them as records in its changelog (``to_record``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["WINDOW_KINDS", "RuntimeWindow", "decode", "encode"]

WINDOW_KINDS = ("maintenance", "calibration")


@dataclass(frozen=True, slots=True)
class RuntimeWindow:
    """One ``hazwatch.maintenance`` record: ``{"id", "site", "sensors": [] (= the whole site),
    "start_ms", "end_ms", "kind", "reason", "ended"}``; times epoch ms, ``[start_ms, end_ms)``."""

    id: int | str
    site: str
    sensors: tuple[str, ...]
    start_ms: int
    end_ms: int
    kind: str = "maintenance"
    reason: str = ""
    ended: bool = False

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> RuntimeWindow:
        """Validate a decoded record; ``ValueError`` says what is wrong."""
        if not isinstance(rec, Mapping):
            raise ValueError(f"a maintenance record must be a JSON object, got {type(rec).__name__}")
        missing = [k for k in ("id", "site", "start_ms", "end_ms") if k not in rec]
        if missing:
            raise ValueError(f"maintenance record lacks {', '.join(missing)}")
        wid, site, sensors = rec["id"], rec["site"], rec.get("sensors") or []
        if type(wid) not in (int, str) or wid == "":
            raise ValueError(f"maintenance record id must be an integer or a string, got {wid!r}")
        if not isinstance(site, str) or not site:
            raise ValueError(f"maintenance record site must be a non-empty string, got {site!r}")
        if not isinstance(sensors, list) or not all(isinstance(s, str) and s for s in sensors):
            raise ValueError(f"maintenance record sensors must be a list of sensor ids, got {sensors!r}")
        start, end = rec["start_ms"], rec["end_ms"]
        if type(start) is not int or type(end) is not int:
            raise ValueError(f"maintenance record start_ms and end_ms must be integers (epoch ms), got {start!r}, {end!r}")
        kind = rec.get("kind") or "maintenance"
        if kind not in WINDOW_KINDS:
            raise ValueError(f"maintenance record kind must be one of {', '.join(WINDOW_KINDS)}, got {kind!r}")
        return cls(wid, site, tuple(sensors), start, end, kind, str(rec.get("reason") or ""), bool(rec.get("ended")))

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "site": self.site, "sensors": list(self.sensors), "start_ms": self.start_ms,
                "end_ms": self.end_ms, "kind": self.kind, "reason": self.reason, "ended": self.ended}

    @property
    def key(self) -> str:
        """The window's key in health events and announcements (``SITE#silence-ID``)."""
        return f"{self.site}#silence-{self.id}"


def encode(window: RuntimeWindow) -> bytes:
    return orjson.dumps(window.to_record())


def decode(raw: bytes | str) -> RuntimeWindow:
    """One ``hazwatch.maintenance`` value; ``ValueError`` says what is wrong."""
    return RuntimeWindow.from_record(orjson.loads(raw))
