"""SMS segments and the text budget: how carriers count a text, and fitting one into the budget.

The one place of these rules; every renderer (``alerts.render``, ``alerts.grouping``,
``alerts.escalation``) fits its texts with :func:`fit` or :func:`first_fitting`, and the
dispatcher, the channel alarm and the fake Twilio count :func:`segments` here.

Segments (GSM 03.38 vs UCS-2, as carriers and Twilio count them):

========  ===============================  ==============  ========================
encoding  when                             one SMS         per concatenated segment
========  ===============================  ==============  ========================
GSM-7     every character in the alphabet  160 septets     153 (extension chars: 2)
UCS-2     any other (every Chinese char)   70 code units   67 (outside the BMP: 2)
========  ===============================  ==============  ========================

The budget (STANDARDS.md "Warning dissemination": red within two segments): :data:`MAX_UNITS`
= two concatenated UCS-2 segments, 134 UTF-16 code units, counted in UCS-2 for every text, an
all-ASCII one too, because some gateways send everything as UCS-2 (:func:`budget_units`).

Fitting: a renderer lists its candidate texts from the richest to the most compact (details
given up one by one, then the site name cut, :func:`shortened`); the first within the budget
is sent, and when none is, the last (the most compact) rather than one without its essentials.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENDED",
    "MAX_SEGMENTS",
    "MAX_UNITS",
    "PER_SEGMENT",
    "budget_units",
    "encoding",
    "first_fitting",
    "fit",
    "fits",
    "segments",
    "shortened",
    "units",
]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

#: Units in one SMS and per concatenated segment, by encoding.
PER_SEGMENT: dict[str, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}

#: Red must fit in two segments (STANDARDS.md "Warning dissemination").
MAX_SEGMENTS = 2

#: Budget of a text in UTF-16 units: two concatenated UCS-2 segments (2 x 67 = 134).
MAX_UNITS = MAX_SEGMENTS * PER_SEGMENT["UCS-2"][1]

#: A site name is cut to no fewer characters than this (its last two give way to "…").
MIN_NAME = 4

D = TypeVar("D")


def encoding(body: str) -> str:
    """``"GSM-7"`` when every character is in the GSM alphabet, else ``"UCS-2"``."""
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in body) else "UCS-2"


def budget_units(text: str) -> int:
    """Length in UTF-16 code units: what a UCS-2 segment counts, and what the budget counts."""
    return len(text.encode("utf-16-le")) // 2


def units(body: str) -> int:
    """Length in the encoding's units: septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding(body) == "GSM-7":
        return sum(2 if c in GSM7_EXTENDED else 1 for c in body)
    return budget_units(body)


def segments(body: str) -> int:
    """Number of SMS segments the body is sent as (1 for an empty body)."""
    n = units(body)
    single, multi = PER_SEGMENT[encoding(body)]
    return 1 if n <= single else math.ceil(n / multi)


def fits(text: str, max_units: int = MAX_UNITS) -> bool:
    """Whether ``text`` is within the budget (UCS-2 units, whatever its encoding)."""
    return budget_units(text) <= max_units


def first_fitting(candidates: Iterable[str], max_units: int = MAX_UNITS) -> str:
    """The first candidate within the budget, else the last one; candidates are made lazily,
    so the richer ones that fit stop the making. Raises ``ValueError`` for no candidate."""
    out: str | None = None
    for out in candidates:
        if fits(out, max_units):
            return out
    if out is None:
        raise ValueError("no candidate text")
    return out


def shortened(name: str) -> Iterator[str]:
    """``name`` cut step by step, two characters at a time with "…" in their place, down to
    :data:`MIN_NAME` characters: 石桥沟雨量站 -> 石桥沟雨… -> 石桥…."""
    while len(name) > MIN_NAME:
        name = name[: len(name) - 2] + "…"
        yield name


def fit(text: Callable[[D, str], str], detail: D, drops: Iterable[str], name: str,
        max_units: int = MAX_UNITS) -> str:
    """``text(detail, name)`` within the budget: in full, then giving up the boolean fields of
    the dataclass ``detail`` named by ``drops`` one by one, in order (each stays given up), then
    with the site ``name`` :func:`shortened`."""
    return first_fitting(_candidates(text, detail, drops, name), max_units)


def _candidates(text: Callable[[D, str], str], detail: D, drops: Iterable[str], name: str) -> Iterator[str]:
    yield text(detail, name)
    for drop in drops:
        detail = _without(detail, drop)
        yield text(detail, name)
    for short in shortened(name):
        yield text(detail, short)


def _without(detail: Any, field: str) -> Any:
    return dataclasses.replace(detail, **{field: False})
