"""Typed, frozen configuration models.

A configuration directory holds four YAML files, each validated by one model here:

- ``hazwatch.yaml`` -> :class:`Settings` (brokers, database, SMS account, ingest limits, routing, CAP);
- ``sites.yaml``    -> :class:`SitesFile` (sites, their sensors and threshold ladders);
- ``zones.yaml``    -> :class:`ZonesFile` (resident zones, their areas and subscribers);
- ``recipients.yaml`` -> :class:`RecipientsFile` (operators, officers and regulators).

Audiences, zones, routing and escalation models live in :mod:`config.notify`; the settings of the
brokers, the database, ingest, Twilio SMS and CAP in :mod:`config.services`.
Cross-references between files (site -> zone, officer -> enterprise, regulator -> region) are checked by
:mod:`config.loader`, which reports every problem with file, path and reason.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from config.console import ConsoleSettings
from config.history import HistorySettings
from config.indicators import IndicatorSettings
from config.mqtt import MqttSettings
from config.models_base import (
    ID_PATTERN,
    LEVELS,
    Id,
    SiteId,
    LadderStep,
    WarningLevel,
    _Model,
    level_rank,
)
from config.notify import NotifySettings, Recipient, Routing, Zone
from config.rules import QualitySpec, RainRule, RateRule, TrendRule
from config.services import CapSettings, DatabaseSettings, IngestSettings, KafkaSettings, SmsSettings
from config.site_rules import MaintenanceWindow, SiteRule, member_list

#: DCS/SCADA tag limits (STANDARDS: "DCS/SCADA tags carry LL, L, H, HH limits").
TagName = Literal["LL", "L", "H", "HH"]

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

__all__ = [
    "ID_PATTERN",
    "LEVELS",
    "QUANTITY_UNITS",
    "CapSettings",
    "Config",
    "DatabaseSettings",
    "IngestSettings",
    "KafkaSettings",
    "LadderStep",
    "MqttSettings",
    "RecipientsFile",
    "Sensor",
    "Settings",
    "Site",
    "SitesFile",
    "SmsSettings",
    "ThresholdRule",
    "ZonesFile",
    "level_rank",
    "zone_shape",
]

#: Units accepted for each measured quantity; the first is the canonical one.
QUANTITY_UNITS: dict[str, tuple[str, ...]] = {
    "combustible_gas": ("%LEL",),
    "toxic_gas": ("%OEL", "ppm", "mg/m3"),
    "oxygen": ("%VOL",),
    "tank_level": ("m",),
    "temperature": ("°C",),
    "pressure": ("MPa", "kPa"),
    "phreatic_depth": ("m",),
    "freeboard": ("m",),
    "dry_beach_length": ("m",),
    "pond_level": ("m",),
    "surface_displacement": ("mm",),
    "rain_increment": ("mm",),
    "rain_1h": ("mm",),
}
Quantity = Literal[
    "combustible_gas",
    "toxic_gas",
    "oxygen",
    "tank_level",
    "temperature",
    "pressure",
    "phreatic_depth",
    "freeboard",
    "dry_beach_length",
    "pond_level",
    "surface_displacement",
    "rain_increment",
    "rain_1h",
]


class ThresholdRule(_Model):
    """A per-sensor threshold rule with a level ladder, a deadband and a minimum duration.

    ``direction: high`` raises when the value is at or above a rung (gas, level, displacement);
    ``low`` raises at or below it (phreatic burial depth, freeboard, dry beach length).
    A level is left only when the value is back beyond the rung by more than ``deadband``
    (same unit as the sensor); a level is entered only after the condition has held for
    ``min_duration_s`` seconds of event time.
    """

    rule: Id
    direction: Literal["high", "low"] = "high"
    ladder: Annotated[list[LadderStep], Field(min_length=1, max_length=4)]
    deadband: Annotated[float, Field(ge=0)] = 0.0
    min_duration_s: Annotated[float, Field(ge=0)] = 0.0
    min_samples: Annotated[int, Field(ge=1, le=1000)] = 1
    """Persistence as consecutive samples: a rung must hold for this many readings in a row (and
    for ``min_duration_s``) before its level is entered; one reading off the rung restarts it."""
    limits: dict[TagName, float] | None = None
    """DCS/SCADA tag limits instead of a ladder: ``{H: 25, HH: 50}`` (high) or ``{L: .., LL: ..}``
    (low); each maps onto the level ``tag_levels`` gives it, and the direction follows the tags."""
    tag_levels: dict[TagName, WarningLevel] = {"H": "orange", "HH": "red", "L": "orange", "LL": "red"}
    source: str | None = None
    """Where the default comes from (a STANDARDS.md line or a site design document)."""

    @model_validator(mode="before")
    @classmethod
    def _ladder_from_tags(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("limits") is None:
            return data
        if data.get("ladder") is not None:
            raise ValueError("give either ladder or limits (tag limits), not both")
        limits, levels = data["limits"], {**cls.model_fields["tag_levels"].default, **(data.get("tag_levels") or {})}
        if not isinstance(limits, dict) or not limits:
            raise ValueError("limits must map tags (LL, L, H, HH) to values")
        unknown = sorted(set(map(str, limits)) - {"LL", "L", "H", "HH"})
        if unknown:
            raise ValueError(f"limits: unknown tags {unknown} (use LL, L, H, HH)")
        high, low = {"H", "HH"} & set(limits), {"L", "LL"} & set(limits)
        if high and low:
            raise ValueError("limits mix high (H, HH) and low (L, LL) tags: make them two rules")
        direction = "high" if high else "low"
        if data.get("direction", direction) != direction:
            raise ValueError(f"direction {data['direction']!r} contradicts the {sorted(limits)} tags")
        steps = sorted(({"level": levels[tag], "value": value, "tag": tag} for tag, value in limits.items()),
                       key=lambda step: level_rank(step["level"]))
        return {**data, "direction": direction, "ladder": steps}

    @model_validator(mode="after")
    def _ladder_ordered(self) -> ThresholdRule:
        ranks = [level_rank(s.level) for s in self.ladder]
        if ranks != sorted(ranks) or len(set(ranks)) != len(ranks):
            raise ValueError("ladder levels must be distinct and listed from least to most severe")
        values = [s.value for s in self.ladder]
        for a, b in zip(values, values[1:]):
            if (self.direction == "high" and not b > a) or (self.direction == "low" and not b < a):
                raise ValueError(
                    f"ladder values must be strictly {'increasing' if self.direction == 'high' else 'decreasing'}"
                    f" for a {self.direction} rule, got {values}"
                )
        gaps = [abs(b - a) for a, b in zip(values, values[1:])]
        if gaps and self.deadband >= min(gaps):
            raise ValueError(
                # :g so that a gap such as 9.2 - 8.5 reads 0.7, not 0.6999999999999993
                f"deadband {self.deadband:g} must be smaller than the smallest gap between rungs ({min(gaps):g})"
            )
        return self


class Sensor(_Model):
    id: Id
    quantity: Quantity
    unit: str
    period_s: Annotated[float, Field(gt=0)]
    """Expected reporting period, seconds."""
    range: tuple[float, float] | None = None
    """Physical measuring range [min, max] in ``unit``."""
    thresholds: list[ThresholdRule] = []
    rain: RainRule | None = None
    """Sliding-window rainfall rule (rain gauges: quantity rain_increment)."""
    quality: QualitySpec = QualitySpec()
    rate: list[RateRule] = []
    """Rate-of-change rules (displacement mm/d, level rise m/h)."""
    trend: TrendRule | None = None
    """Trend forecast toward the next rung of the first threshold rule."""
    allowed_lateness_s: Annotated[float, Field(ge=0, le=86400)] = 0.0
    """Readings arriving out of order within this much event time are put back in order before
    the rules see them (rules/lateness.py), at the price of that much delay; older ones are
    dead-lettered. 0 (default): no delay, any reading older than an earlier-arrived one is late."""

    @model_validator(mode="after")
    def _unit_matches(self) -> Sensor:
        allowed = QUANTITY_UNITS[self.quantity]
        if self.unit not in allowed:
            raise ValueError(f"unit {self.unit!r} is not a unit of {self.quantity} (use one of {list(allowed)})")
        if self.range is not None and not self.range[0] < self.range[1]:
            raise ValueError(f"range must be [min, max] with min < max, got {list(self.range)}")
        # episode ids are made of subject, rule and time: two rules of one name would share them
        rules = self.rule_names
        if len(set(rules)) != len(rules):
            raise ValueError(f"rule names must be unique within a sensor, got {rules}")
        return self

    @property
    def rule_names(self) -> list[str]:
        """The names of this sensor's rules (threshold, rate, rain, trend)."""
        rules = [t.rule for t in self.thresholds] + [r.rule for r in self.rate]
        return rules + [x.rule for x in (self.rain, self.trend) if x is not None]


class Site(_Model):
    id: SiteId
    name: str
    name_en: str | None = None
    kind: Literal["chemical", "tailings", "rain"]
    enterprise: str
    region: Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
    """6-digit administrative division code (GB/T 2260)."""
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    zone: Id
    """The resident zone this site affects first (CAP area, resident SMS)."""
    extra_zones: list[Id] = []
    """Further zones this site affects."""
    hazard_radius_km: Annotated[float, Field(gt=0, le=50)] | None = None
    """Geo-targeting: every zone whose area meets this circle around the site is affected too."""
    sensors: Annotated[list[Sensor], Field(min_length=1)]
    site_rules: list[SiteRule] = []
    """Voting, GB 39496 aggregation and composite rules over the levels of other rules
    (config/site_rules.py), evaluated in this order."""
    maintenance: list[MaintenanceWindow] = []
    """Maintenance and calibration windows: readings inside one raise and clear nothing."""

    @model_validator(mode="after")
    def _site_rules_resolve(self) -> Site:
        sensors = {s.id: s for s in self.sensors}
        known: set[str] = set()  # site rules listed so far
        sensor_rules = {r for s in self.sensors for r in s.rule_names}
        for rule in self.site_rules:
            if rule.rule in sensors or rule.rule in known or rule.rule in sensor_rules:
                raise ValueError(f"site rule {rule.rule!r}: the name is already a sensor, a sensor rule or a site "
                                 "rule of this site")
            labels = [m.label for m in member_list(rule) if m is not getattr(rule, "escalate", None)]
            if len(set(labels)) != len(labels):
                raise ValueError(f"site rule {rule.rule!r}: a member is listed twice ({labels}); one sensor "
                                 "must not vote twice")
            for m in member_list(rule):
                if m.sensor is not None:
                    if m.sensor not in sensors:
                        raise ValueError(f"site rule {rule.rule!r}: unknown sensor {m.sensor!r}")
                    if m.rule not in sensors[m.sensor].rule_names:
                        raise ValueError(f"site rule {rule.rule!r}: sensor {m.sensor!r} has no rule {m.rule!r} "
                                         f"(it has {sensors[m.sensor].rule_names})")
                elif m.rule not in known and not any(m.rule in s.rule_names for s in self.sensors):
                    raise ValueError(f"site rule {rule.rule!r}: no sensor rule and no earlier site rule "
                                     f"is named {m.rule!r}")
            known.add(rule.rule)
        for w in self.maintenance:
            for sid in w.sensors:
                if sid not in sensors:
                    raise ValueError(f"maintenance window: unknown sensor {sid!r}")
        return self


class Settings(_Model):
    mqtt: MqttSettings = MqttSettings()
    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    sms: SmsSettings
    sms_fallback: SmsSettings | None = None
    """A second SMS account (another provider or region) that tells operators when ``sms`` fails."""
    ingest: IngestSettings = IngestSettings()
    routing: Routing = Routing()
    notify: NotifySettings = NotifySettings()
    cap: CapSettings = CapSettings()
    console: ConsoleSettings = ConsoleSettings()
    history: HistorySettings = HistorySettings()
    indicators: IndicatorSettings = IndicatorSettings()
    timezone: str = "Asia/Shanghai"


class SitesFile(_Model):
    sites: Annotated[list[Site], Field(min_length=1)]


class ZonesFile(_Model):
    zones: list[Zone] = []


class RecipientsFile(_Model):
    recipients: list[Recipient] = []


def zone_shape(zone: Zone) -> BaseGeometry:
    """The zone's area as a shapely geometry in degrees (lon, lat)."""
    from shapely.geometry import Polygon

    if zone.polygon is not None:
        return Polygon(zone.polygon.coordinates[0], zone.polygon.coordinates[1:])
    assert zone.circle is not None
    c = zone.circle
    return _circle(c.lon, c.lat, c.radius_km)


def _circle(lon: float, lat: float, radius_km: float) -> BaseGeometry:
    """A circle as an ellipse in degrees: 1 degree of latitude is 111.32 km."""
    from shapely import affinity
    from shapely.geometry import Point

    dlat = radius_km / 111.32
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    return affinity.scale(Point(lon, lat).buffer(1.0, 64), xfact=dlon, yfact=dlat)


def _affected_zones(site: Site, zones: list[Zone]) -> list[str]:
    out = list(dict.fromkeys([site.zone, *site.extra_zones]))  # in order, each zone once
    if site.hazard_radius_km is not None:
        hazard = _circle(site.lon, site.lat, site.hazard_radius_km)
        out += [z.id for z in zones if z.id not in out and zone_shape(z).intersects(hazard)]
    return out


class Config(_Model):
    """The whole validated configuration, with lookups built once."""

    settings: Settings
    sites: list[Site]
    zones: list[Zone]
    recipients: list[Recipient]

    _sites: dict[str, Site] = PrivateAttr(default_factory=dict)
    _zones: dict[str, Zone] = PrivateAttr(default_factory=dict)
    _sensors: dict[tuple[str, str], Sensor] = PrivateAttr(default_factory=dict)
    _index: dict[tuple[str, str], int] = PrivateAttr(default_factory=dict)
    _fingerprint: str = PrivateAttr(default="")
    _affected: dict[str, list[str]] = PrivateAttr(default_factory=dict)

    def site(self, site_id: str) -> Site:
        return self._sites[site_id]

    def zone(self, zone_id: str) -> Zone:
        return self._zones[zone_id]

    def sensor(self, site_id: str, sensor_id: str) -> Sensor | None:
        return self._sensors.get((site_id, sensor_id))

    def sensor_index(self, site_id: str, sensor_id: str) -> int:
        """The sensor's dense index: its position in the configuration (sites, then sensors in
        file order), -1 if unknown. Ingest sends it with each reading so the rule engine needs no
        lookup, when both run the same configuration (:attr:`sensor_fingerprint`)."""
        return self._index.get((site_id, sensor_id), -1)

    @property
    def sensor_fingerprint(self) -> str:
        """A hash of the ordered (site, sensor) list: equal fingerprints, equal dense indices."""
        return self._fingerprint

    def model_post_init(self, _context: object) -> None:
        self._sites = {s.id: s for s in self.sites}
        self._zones = {z.id: z for z in self.zones}
        self._sensors = {(s.id, x.id): x for s in self.sites for x in s.sensors}
        self._index = {key: i for i, key in enumerate(self._sensors)}
        self._fingerprint = hashlib.sha256("\n".join(f"{a}/{b}" for a, b in self._sensors).encode()).hexdigest()[:16]
        self._affected = {s.id: _affected_zones(s, self.zones) for s in self.sites}

    def affected_zones(self, site_id: str) -> list[str]:
        """The zones a site affects: its own, the extra ones, and those within its hazard radius."""
        return self._affected[site_id]

