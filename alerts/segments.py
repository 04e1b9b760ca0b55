"""SMS segment arithmetic (GSM 03.38 vs UCS-2), as carriers and Twilio count it.

Any character outside the GSM-7 alphabet (every Chinese character) forces UCS-2: 70 characters
fit in one SMS, 67 per segment when concatenated (STANDARDS.md "Warning dissemination").
GSM-7: 160 septets in one SMS, 153 per segment; extension characters take two septets.
UCS-2 counts UTF-16 code units, so a character outside the BMP takes two.
"""

from __future__ import annotations

import math

__all__ = ["GSM7_BASIC", "GSM7_EXTENDED", "encoding", "segments", "units"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def encoding(body: str) -> str:
    """``"GSM-7"`` when every character is in the GSM alphabet, else ``"UCS-2"``."""
    return "GSM-7" if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in body) else "UCS-2"


def units(body: str) -> int:
    """Length in the encoding's units: septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding(body) == "GSM-7":
        return sum(2 if c in GSM7_EXTENDED else 1 for c in body)
    return len(body.encode("utf-16-le")) // 2


def segments(body: str) -> int:
    """Number of SMS segments the body is sent as (1 for an empty body)."""
    n = units(body)
    single, multi = (160, 153) if encoding(body) == "GSM-7" else (70, 67)
    return 1 if n <= single else math.ceil(n / multi)
