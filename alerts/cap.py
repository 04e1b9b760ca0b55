"""CAP 1.2 messages for loudspeaker gateways and the CAP feed: a pure builder and a validator.

Standards followed (``STANDARDS.md`` "Warning dissemination"):

- OASIS CAP 1.2: required ``identifier, sender, sent, status, msgType, scope`` and, in ``info``,
  ``category, event, urgency, severity, certainty``; times with a numeric offset (``+08:00``,
  never ``Z``) and no fractional seconds (the schema's pattern); Update and Cancel carry
  ``references`` (``sender,identifier,sent`` separated by spaces); an all-clear is an Update with
  responseType ``AllClear``; one ``info`` per language; areas as circle (``lat,lon radius_km``)
  and geocode.
- GB/T 35965.1-2018 (China's CAP profile): identifier ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`` —
  6-digit administrative code (GB/T 2260), 3-digit agency type, 3-digit unit, 2-digit extension,
  the send time in Beijing time, one sequence digit.
- Severity from configuration (docs/ARCHITECTURE.md §14.4: red Extreme, orange Severe, yellow Moderate, blue Minor).

The builder takes the send time as an argument and does no I/O; :func:`validate_cap` reads the
XSD packaged next to this module (the official OASIS CAP 1.2 schema; its SHA-256 is pinned in tests/alerts/test_cap.py).

Errors::

    ValueError
     └── CapError        the document does not parse or does not validate against the schema
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from lxml import etree

from alerts.render import action, describe, format_value, headline, quantity_of
from config.models import CapSettings, Sensor, Site, Zone
from formats.warning import WarningEvent

__all__ = [
    "CAP_NS",
    "CAP_XSD",
    "CapError",
    "MsgType",
    "build_cap",
    "cap_identifier",
    "cap_time",
    "validate_cap",
]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
#: The packaged schema (package data ``alerts/standards/*.xsd``).
CAP_XSD = Path(__file__).with_name("standards") / "CAP-v1.2.xsd"

MsgType = Literal["Alert", "Update", "Cancel"]

#: Beijing time, the clock of GB/T 35965.1 identifiers (UTC+8, no daylight saving).
_BEIJING = timezone(timedelta(hours=8))

_SENDER_NAME = {
    "zh-CN": "hazwatch 应急监测预警平台",
    "en": "hazwatch emergency monitoring and warning",
}

# CAP categories by site kind: a chemical release is a safety and environmental hazard, a dam
# failure a geological one, a flash flood a meteorological one.
_CATEGORIES: dict[str, tuple[str, ...]] = {
    "chemical": ("Safety", "Env"),
    "tailings": ("Geo", "Safety"),
    "rain": ("Met",),
}
_EVENT = {
    "zh-CN": {
        "chemical": "危险化学品重大危险源预警",
        "tailings": "尾矿库安全预警",
        "rain": "山洪灾害预警",
    },
    "en": {
        "chemical": "Hazardous-chemical site warning",
        "tailings": "Tailings dam warning",
        "rain": "Flash flood warning",
    },
}
# Red asks for action now; orange for preparation within the hour (准备转移); lower levels watch.
_URGENCY = {"red": "Immediate", "orange": "Expected", "yellow": "Future", "blue": "Future"}
# Default responseType by site kind and level; residents' SMS actions say the same in words.
_RESPONSE: dict[str, dict[str, tuple[str, ...]]] = {
    "rain": {
        "red": ("Evacuate",),
        "orange": ("Prepare",),
        "yellow": ("Monitor",),
        "blue": ("Monitor",),
    },
    "tailings": {
        "red": ("Evacuate",),
        "orange": ("Prepare",),
        "yellow": ("Monitor",),
        "blue": ("Monitor",),
    },
    "chemical": {
        "red": ("Shelter", "Evacuate"),
        "orange": ("Shelter", "Prepare"),
        "yellow": ("Monitor",),
        "blue": ("Monitor",),
    },
}
_RESPONSE_TYPES = frozenset(
    ("Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None")
)
# Characters XML 1.0 cannot carry; lxml refuses them, so configuration text is cleaned first.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_CODE = re.compile(r"^\d{6}$")
# One validation at a time: lxml does not promise that a shared XMLSchema is thread-safe.
_VALIDATE_LOCK = threading.Lock()


class CapError(ValueError):
    """A CAP document that does not parse or does not validate against CAP 1.2."""


def cap_time(moment: datetime, tz: str = "Asia/Shanghai") -> str:
    """``2025-11-23T14:05:00+08:00``: local time in ``tz``, numeric offset, whole seconds."""
    if moment.tzinfo is None:
        raise ValueError("CAP times need a timezone-aware datetime")
    return moment.astimezone(ZoneInfo(tz)).replace(microsecond=0).isoformat()


def cap_identifier(region: str, cap: CapSettings, sent: datetime, seq: int) -> str:
    """GB/T 35965.1 identifier ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N`` (send time in Beijing time).

    ``region`` is the 6-digit GB/T 2260 code of the issuing area, ``seq`` a digit 0-9 that tells
    apart messages of one issuer sent within the same second.
    """
    if not _CODE.match(region):
        raise ValueError(f"region must be a 6-digit GB/T 2260 code, got {region!r}")
    if not 0 <= seq <= 9:
        raise ValueError(f"sequence must be a digit 0-9, got {seq}")
    if sent.tzinfo is None:
        raise ValueError("sent must be a timezone-aware datetime")
    stamp = sent.astimezone(_BEIJING).strftime("%Y%m%d%H%M%S")
    return f"{region}{cap.agency_type}{cap.unit}{cap.extension}_{stamp}_{seq}"


def _clean(text: str) -> str:
    return _XML_INVALID.sub("", text)


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = _clean(text)
    return el


def _pair(parent: etree._Element, tag: str, name: str, value: str) -> None:
    el = _sub(parent, tag)
    _sub(el, "valueName", name)
    _sub(el, "value", value)


def _token(what: str, value: str) -> str:
    """CAP 1.2 §3.2.1: sender and identifier must not include spaces, commas, ``<`` or ``&``."""
    if not value or re.search(r"[\s,<&]", value):
        raise ValueError(f"CAP {what} must be non-empty without spaces, commas, < or &: {value!r}")
    return value


def _references(references: Sequence[tuple[str, str, datetime]], tz: str) -> str:
    return " ".join(
        f"{_token('sender', sender)},{_token('identifier', ident)},{cap_time(sent, tz)}"
        for sender, ident, sent in references
    )


def _sensor(site: Site, event: WarningEvent) -> Sensor | None:
    return next((s for s in site.sensors if s.id == event.sensor), None)


def _decimal(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _info(
    root: etree._Element,
    lang: Literal["zh-CN", "en"],
    event: WarningEvent,
    site: Site,
    zone: Zone,
    cap: CapSettings,
    responses: Sequence[str],
    tz: str,
) -> None:
    sensor = _sensor(site, event)
    cleared = event.kind == "cleared"
    info = _sub(root, "info")
    _sub(info, "language", lang)
    for category in _CATEGORIES[site.kind]:
        _sub(info, "category", category)
    _sub(info, "event", _EVENT[lang][site.kind])
    for response in responses:
        _sub(info, "responseType", response)
    if cleared:
        # An all-clear: the hazard is past; Minor is the lowest severity CAP 1.2 allows.
        urgency, severity = "Past", "Minor"
    else:
        urgency, severity = _URGENCY[event.level], cap.severity[event.level]  # type: ignore[index]
    _sub(info, "urgency", urgency)
    _sub(info, "severity", severity)
    _sub(info, "certainty", "Observed")
    if not cleared:
        # The reading that decided the level: when the hazard was observed to begin.
        _sub(info, "onset", cap_time(datetime.fromtimestamp(event.ts / 1000, UTC), tz))
    _sub(info, "senderName", _SENDER_NAME[lang])
    _sub(info, "headline", headline(event, site, sensor, language=lang))
    text = describe(event, site, sensor, language=lang, tz=tz, point=True)
    # Broadcast gateways have room the SMS lacks: name the enterprise that answers for the site.
    text += (
        f"责任单位：{site.enterprise}。"
        if lang == "zh-CN"
        else f" Responsible enterprise: {site.enterprise}."
    )
    _sub(info, "description", text)
    _sub(info, "instruction", action(event, site, role="resident", language=lang))
    _pair(info, "parameter", "hazwatch:episode", event.episode)
    _pair(info, "parameter", "hazwatch:subject", event.subject)
    _pair(info, "parameter", "hazwatch:quantity", quantity_of(event, sensor))
    _pair(info, "parameter", "hazwatch:kind", event.kind)
    _pair(info, "parameter", "hazwatch:level", event.level)
    if cleared:
        _pair(info, "parameter", "hazwatch:peak", str(event.detail.get("peak") or event.previous))
    _pair(info, "parameter", "hazwatch:value", format_value(event.value, event.unit, "en"))
    if event.threshold is not None:
        _pair(
            info, "parameter", "hazwatch:threshold", format_value(event.threshold, event.unit, "en")
        )
    area = _sub(info, "area")
    _sub(area, "areaDesc", zone.name if lang == "zh-CN" else (zone.name_en or zone.name))
    if zone.polygon is not None:
        # CAP polygon: "lat,lon" pairs, first == last (GeoJSON rings are [lon, lat], also closed)
        ring = zone.polygon.coordinates[0]
        _sub(area, "polygon", " ".join(f"{_decimal(lat)},{_decimal(lon)}" for lon, lat in ring))
    if zone.circle is not None:
        c = zone.circle
        _sub(area, "circle", f"{_decimal(c.lat)},{_decimal(c.lon)} {_decimal(c.radius_km)}")
    _pair(area, "geocode", "GB/T 2260", zone.region)


def build_cap(
    event: WarningEvent,
    site: Site,
    zone: Zone,
    cap: CapSettings,
    *,
    msg_type: MsgType,
    sent: datetime,
    seq: int = 0,
    references: Sequence[tuple[str, str, datetime]] = (),
    response_type: str | None = None,
    tz: str = "Asia/Shanghai",
) -> tuple[str, bytes]:
    """One CAP 1.2 alert for ``event`` addressed to ``zone``: ``(identifier, UTF-8 XML bytes)``.

    Status Actual, scope Public, one ``info`` in zh-CN and one in en. ``references`` are the
    earlier messages ``(sender, identifier, sent)`` an Update or Cancel refers to (required for
    those). ``response_type`` overrides the default by site kind and level; a cleared event
    defaults to ``AllClear`` (CAP 1.2: the all-clear is an Update with responseType AllClear).
    """
    if msg_type not in ("Alert", "Update", "Cancel"):
        raise ValueError(f"msgType must be Alert, Update or Cancel, got {msg_type!r}")
    if msg_type != "Alert" and not references:
        raise ValueError(f"a CAP {msg_type} must reference the message(s) it updates")
    if event.kind != "cleared" and event.level not in _URGENCY:
        raise ValueError(f"a {event.kind} event needs a warning level, got {event.level!r}")
    if response_type is not None:
        if response_type not in _RESPONSE_TYPES:
            raise ValueError(f"unknown CAP responseType {response_type!r}")
        responses: tuple[str, ...] = (response_type,)
    elif event.kind == "cleared":
        responses = ("AllClear",)
    else:
        responses = _RESPONSE[site.kind][event.level]

    identifier = cap_identifier(site.region, cap, sent, seq)
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _sub(root, "identifier", identifier)
    _sub(root, "sender", _token("sender", cap.sender))
    _sub(root, "sent", cap_time(sent, tz))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", msg_type)
    _sub(root, "scope", "Public")
    if references:
        _sub(root, "references", _references(references, tz))
    _sub(root, "incidents", event.episode)
    for lang in ("zh-CN", "en"):
        _info(root, lang, event, site, zone, cap, responses, tz)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return identifier, xml


@functools.lru_cache(maxsize=8)
def _schema(path: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(path), parser))


def validate_cap(xml: bytes, xsd_path: Path | None = None) -> None:
    """Raise :class:`CapError` (with the schema's error lines) unless ``xml`` is valid CAP 1.2.

    ``xsd_path`` defaults to the packaged schema; each schema is parsed once and cached.
    """
    schema = _schema(Path(xsd_path or CAP_XSD).resolve())
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        doc = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        raise CapError(f"CAP document is not well-formed XML: {exc}") from exc
    try:
        with _VALIDATE_LOCK:
            schema.assertValid(doc)
    except etree.DocumentInvalid as exc:
        lines = "\n".join(f"line {e.line}: {e.message}" for e in exc.error_log) or str(exc)
        raise CapError(f"CAP document does not validate against CAP 1.2:\n{lines}") from exc
