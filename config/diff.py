"""What changed between two configurations, in an operator's words: the record of a reload.

``changes(old, new)`` lists one line per site, sensor, zone or recipient added, removed or
changed (sites and sensors with what changed, old → new, at most three a line; zones and
recipients with the fields that changed), and per settings section changed, for example::

    sensor CH-001/GT-101 changed: thresholds.combustible_gas.ladder.orange.value 25 → 13
    site RG-001 changed: name 石桥沟雨量站 → 石桥沟村雨量站
    site TD-002 added
    zone Z-XIAHE-VILLAGE changed: subscribers
    recipient **********0011 (officer) removed
    settings changed: notify

Secrets never appear: a settings section is named, not shown, a recipient is named by a masked
phone number, and the values of zones (their subscribers' numbers) and recipients are not shown.
The list goes to the audit table (a reload from the console) and to the log (every reload,
config/reload.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from config.models import Config

__all__ = ["changes", "summary"]


def _dump(items: Iterable[Any], key: str) -> dict[str, dict[str, Any]]:
    return {str(getattr(i, key)): i.model_dump(mode="json") for i in items}


def _fields(a: dict[str, Any], b: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    return [k for k in dict.fromkeys([*a, *b]) if k not in skip and a.get(k) != b.get(k)]


_NAMES = ("id", "rule", "level", "hours", "name")
"""Keys that name an element of a list (a threshold by its rule, a rung by its level...)."""
MAX_VALUES = 3


def _label(item: Any, index: int) -> str:
    if isinstance(item, dict):
        for key in _NAMES:
            if isinstance(item.get(key), (str, int)):
                return str(item[key])
    return str(index)


def _value(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (dict, list)):
        text = "…"
    else:
        text = "none" if value is None else str(value)
    return text if len(text) <= 24 else text[:23] + "…"


def _values(a: Any, b: Any, path: str) -> list[str]:
    """What differs between ``a`` and ``b``, leaf by leaf, as ``path old → new``."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [line for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)
                for line in _values(a.get(k), b.get(k), f"{path}.{k}" if path else k)]
    if isinstance(a, list) and isinstance(b, list):
        old = {_label(x, i): x for i, x in enumerate(a)}
        new = {_label(x, i): x for i, x in enumerate(b)}
        if len(old) == len(a) and len(new) == len(b):  # elements named uniquely: matched by name
            out = []
            for k in dict.fromkeys([*old, *new]):
                where = f"{path}.{k}" if path else k
                if k not in new:
                    out.append(f"{where} removed")
                elif k not in old:
                    out.append(f"{where} added")
                elif old[k] != new[k]:
                    out += _values(old[k], new[k], where)
            return out
    return [f"{path} {_value(a)} → {_value(b)}"]


def _compare(kind: str, old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]],
             skip: tuple[str, ...] = (), values: bool = False) -> list[str]:
    out = [f"{kind} {k} added" for k in new if k not in old]
    out += [f"{kind} {k} removed" for k in old if k not in new]
    for k in old.keys() & new.keys():
        if fields := _fields(old[k], new[k], skip):
            shown = fields
            if values:
                diffs = [d for f in fields for d in _values(old[k].get(f), new[k].get(f), f)]
                shown = diffs[:MAX_VALUES] + ([f"{len(diffs) - MAX_VALUES} more"] if len(diffs) > MAX_VALUES else [])
            out.append(f"{kind} {k} changed: {', '.join(shown)}")
    return sorted(out, key=lambda line: (line.split(" ", 2)[1], line))


def _masked(phone: str) -> str:
    """All but the last 4 characters hidden, as the console shows a number."""
    return "*" * max(0, len(phone) - 4) + phone[-4:]


def _recipients(config: Config) -> dict[str, dict[str, Any]]:
    """Recipients by masked number and role; two alike ones told apart by their order (#2)."""
    out: dict[str, dict[str, Any]] = {}
    for r in config.recipients:
        key, n = f"{_masked(r.phone)} ({r.role})", 1
        while key in out:
            n += 1
            key = f"{_masked(r.phone)} ({r.role}) #{n}"
        out[key] = r.model_dump(mode="json")
    return out


def changes(old: Config, new: Config) -> list[str]:
    """Every difference between ``old`` and ``new``, one line each (module docstring); empty when
    they are equal."""
    out = _compare("site", _dump(old.sites, "id"), _dump(new.sites, "id"), skip=("sensors",), values=True)
    olds = {f"{s.id}/{x.id}": x.model_dump(mode="json") for s in old.sites for x in s.sensors}
    news = {f"{s.id}/{x.id}": x.model_dump(mode="json") for s in new.sites for x in s.sensors}
    gone = {s.id for s in old.sites} - {s.id for s in new.sites}
    added = {s.id for s in new.sites} - {s.id for s in old.sites}
    # a site added or removed is one line, not one per sensor
    out += _compare("sensor", {k: v for k, v in olds.items() if k.split("/")[0] not in gone},
                    {k: v for k, v in news.items() if k.split("/")[0] not in added}, values=True)
    out += _compare("zone", _dump(old.zones, "id"), _dump(new.zones, "id"))
    out += _compare("recipient", _recipients(old), _recipients(new))
    sections = _fields(old.settings.model_dump(), new.settings.model_dump())  # secrets compared by value
    if sections:
        out.append(f"settings changed: {', '.join(sections)}")
    return out


def summary(lines: list[str], limit: int = 20) -> str:
    """``lines`` joined for a log line or an audit text: at most ``limit``, then how many more."""
    if not lines:
        return "no change"
    shown = "; ".join(lines[:limit])
    return shown if len(lines) <= limit else f"{shown}; and {len(lines) - limit} more"
