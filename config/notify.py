"""Who hears what: audiences, resident zones, routing rules, answer-or-escalate (叫应) timings,
grouping and rate limits. Typed, frozen, validated once (geometry with shapely).

Audiences:

- ``operators``: monitoring-centre operators, every site;
- ``officers``: the enterprise safety officers of the site's enterprise;
- ``regulators:county|city|province``: regulators of the tier whose 6-digit region code covers
  the site's region (county: all 6 digits, city: the first 4, province: the first 2);
- ``residents``: the subscribers of every zone the site affects.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator, model_validator

from config.channel_registry import CHANNEL_NAMES, canonical, spec
from config.channels import ChannelsSettings
from config.inhibit import DEFAULT_INHIBIT_RULES, InhibitRule

__all__ = [
    "AUDIENCES",
    "MAX_POLYGON_VERTICES",
    "ChannelAlarm",
    "Circle",
    "Escalation",
    "EscalationStep",
    "HttpSettings",
    "NotifySettings",
    "PolygonArea",
    "QuietHours",
    "RateLimit",
    "Recipient",
    "Routing",
    "RoutingMatch",
    "RoutingRule",
    "Subscriber",
    "Zone",
    "region_prefix",
]

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+[1-9]\d{6,14}$")]
Region = Annotated[str, StringConstraints(pattern=r"^\d{6}$")]
Language = Literal["zh-CN", "en"]
Tier = Literal["county", "city", "province"]
Audience = Literal["operators", "officers", "regulators:county", "regulators:city", "regulators:province", "residents"]
AUDIENCES: tuple[str, ...] = ("operators", "officers", "regulators:county", "regulators:city",
                              "regulators:province", "residents")
#: Channel names come from the channel registry (``hazwatch channels`` lists them); ``sms`` is
#: Twilio SMS, as before the registry.
Channel = Literal[CHANNEL_NAMES]  # type: ignore[valid-type]
WarningLevel = Literal["blue", "yellow", "orange", "red"]


def _time_of_day(value: Any) -> Any:
    """``HH:MM`` from 00:00 to 23:59, with a reason a person can act on."""
    if isinstance(value, int) and not isinstance(value, bool) and 60 <= value < 24 * 60:
        # YAML 1.1 reads an unquoted 20:00 as the sexagesimal number 1200.
        raise ValueError(f"write times of day in quotes: YAML reads an unquoted "
                         f"{value // 60}:{value % 60:02d} as the number {value}")
    if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        hint = " (midnight is 00:00)" if value == "24:00" else ""
        raise ValueError(f"time of day must be HH:MM from 00:00 to 23:59, got {value!r}{hint}")
    return value


HHMM = Annotated[str, BeforeValidator(_time_of_day)]

#: A CAP polygon is a list of points in one element; keep zones drawable and messages small.
MAX_POLYGON_VERTICES = 500

_TIER_DIGITS = {"county": 6, "city": 4, "province": 2}


def region_prefix(region: str, tier: str) -> str:
    """The part of a 6-digit GB/T 2260 code that a regulator of ``tier`` covers."""
    return region[: _TIER_DIGITS[tier]]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Circle(_Model):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    radius_km: Annotated[float, Field(gt=0, le=200)]


class PolygonArea(_Model):
    """A GeoJSON Polygon (RFC 7946): rings of [lon, lat] positions, the first ring the outline."""

    type: Literal["Polygon"]
    coordinates: Annotated[list[list[tuple[float, float]]], Field(min_length=1)]

    @model_validator(mode="after")
    def _valid_ring(self) -> PolygonArea:
        from shapely.geometry import Polygon
        from shapely.validation import explain_validity

        for i, ring in enumerate(self.coordinates):
            name = f"ring {i} ({'the outline' if i == 0 else f'hole {i}'})"
            if len(ring) < 4:
                raise ValueError(f"{name} needs at least 4 positions (a closed triangle), got {len(ring)}")
            if ring[0] != ring[-1]:
                raise ValueError(f"{name} is not closed: its last position {list(ring[-1])} must repeat "
                                 f"its first {list(ring[0])}")
            if len(ring) - 1 > MAX_POLYGON_VERTICES:
                raise ValueError(f"{name} has {len(ring) - 1} vertices, more than {MAX_POLYGON_VERTICES}")
            for lon, lat in ring:
                if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                    raise ValueError(f"position [{lon}, {lat}] is not [lon, lat] on Earth")
        poly = Polygon(self.coordinates[0], self.coordinates[1:])
        if not poly.is_valid:
            raise ValueError(f"polygon is not valid: {explain_validity(poly)}")
        return self


class Subscriber(_Model):
    name: str
    phone: Phone
    language: Language = "zh-CN"


class Zone(_Model):
    """A resident zone: its area (a GeoJSON polygon or a circle) and who lives there."""

    id: Id
    name: str
    name_en: str | None = None
    region: Region
    circle: Circle | None = None
    polygon: PolygonArea | None = None
    subscribers: list[Subscriber] = []

    @model_validator(mode="after")
    def _one_area(self) -> Zone:
        if self.circle is None and self.polygon is None:
            raise ValueError("a zone needs an area: give it a circle or a polygon")
        if self.circle is not None and self.polygon is not None:
            raise ValueError("a zone has exactly one area: give it a circle or a polygon, not both")
        return self


class Recipient(_Model):
    """A person notified by role. Residents are zone subscribers (zones.yaml), not recipients."""

    name: str
    phone: Phone
    """E.164, e.g. +8613800138000."""
    role: Literal["operator", "officer", "regulator"]
    enterprise: str | None = None
    """Officers: the enterprise whose sites they answer for."""
    tier: Tier | None = None
    region: Region | None = None
    """Regulators: their tier and the 6-digit code of the division they regulate."""
    language: Language = "zh-CN"

    @model_validator(mode="before")
    @classmethod
    def _not_a_resident(cls, data: Any) -> Any:
        # The v1 role; without this the reasons would be "role: Input should be ..." and "zone: Extra inputs".
        if isinstance(data, dict) and data.get("role") == "resident":
            raise ValueError("residents are not recipients: list them as subscribers of their zone in zones.yaml")
        return data

    @model_validator(mode="after")
    def _role_fields(self) -> Recipient:
        if self.role == "officer" and not self.enterprise:
            raise ValueError("an officer needs the enterprise they answer for")
        if self.role == "regulator" and self.tier is None:
            raise ValueError("a regulator needs a tier: county, city or province")
        if self.role == "regulator" and self.region is None:
            raise ValueError("a regulator needs the 6-digit region code of the division they regulate")
        if self.role == "regulator" and self.tier and self.region:
            n = _TIER_DIGITS[self.tier]
            tail = self.region[n:]
            if tail and set(tail) != {"0"}:
                raise ValueError(f"a {self.tier} region code ends in zeros after its first {n} digits "
                                 f"(e.g. {self.region[:n]}{'0' * (6 - n)}), got {self.region}")
        return self


class RoutingMatch(_Model):
    """Every given field must match; an omitted field matches anything."""

    levels: list[WarningLevel] | None = None
    site_kinds: list[Literal["chemical", "tailings", "rain"]] | None = None
    rules: list[str] | None = None
    hours: tuple[HHMM, HHMM] | None = None
    """Local time of day [from, to); may wrap midnight, e.g. ["20:00", "08:00"]."""

    @model_validator(mode="after")
    def _hours_not_empty(self) -> RoutingMatch:
        if self.hours is not None and self.hours[0] == self.hours[1]:
            raise ValueError(f"hours start and end at the same time ({self.hours[0]}), which is ambiguous: "
                             "omit hours to match at any time")
        return self


class RoutingRule(_Model):
    name: str
    match: RoutingMatch = RoutingMatch()
    audiences: Annotated[list[Audience], Field(min_length=1)]
    channels: Annotated[list[Channel], Field(min_length=1)] = ["sms"]


class QuietHours(_Model):
    """Messages of these levels to these audiences wait until the quiet hours end. Never red."""

    start: HHMM
    end: HHMM
    audiences: list[Audience] = ["residents"]
    levels: list[Literal["blue", "yellow", "orange"]] = ["blue", "yellow"]
    """Orange is not held by default: for mountain torrents it means 准备转移 (prepare to evacuate)."""

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError(f"quiet hours start and end at the same time ({self.start}), which is ambiguous: "
                             "omit quiet_hours for none")
        return self


def _default_rules() -> list[RoutingRule]:
    return [
        RoutingRule(name="centre", audiences=["operators"]),
        RoutingRule(name="enterprise", match=RoutingMatch(levels=["yellow", "orange", "red"]),
                    audiences=["officers"]),
        RoutingRule(name="residents-red", match=RoutingMatch(levels=["red"]), audiences=["residents"],
                    channels=["sms", "cap"]),
    ]


class Routing(_Model):
    """Rules are additive: a recipient hears an event if any rule routes it to them."""

    rules: list[RoutingRule] = Field(default_factory=_default_rules)
    quiet_hours: QuietHours | None = None


class EscalationStep(_Model):
    tier: Tier
    after_min: Annotated[float, Field(gt=0)]
    """Minutes after the warning reached ``min_level`` without the officer's acknowledgement."""


class Escalation(_Model):
    """Answer or escalate (叫应): an unacknowledged warning climbs county -> city -> province."""

    min_level: WarningLevel = "orange"
    steps: list[EscalationStep] = [
        EscalationStep(tier="county", after_min=10),
        EscalationStep(tier="city", after_min=20),
        EscalationStep(tier="province", after_min=30),
    ]
    red_reminder_every_min: Annotated[float, Field(gt=0)] | None = 5.0
    """An unacknowledged red is repeated to its audience every M minutes."""
    reminder_audiences: list[Audience] = ["officers", "operators"]
    channels: Annotated[list[Channel], Field(min_length=1)] = ["sms"]
    """The channels the steps and reminders go out on, each to the people (or the group robots)
    of the step's audience there: e.g. ``[sms-aliyun, wecom-robot]``. Not a broadcast channel:
    a loudspeaker cannot answer a 叫应."""

    @field_validator("channels")
    @classmethod
    def _people(cls, channels: list[str]) -> list[str]:
        if broadcast := [c for c in channels if spec(c).kind == "broadcast"]:
            raise ValueError(f"叫应 reaches people who can answer: remove the broadcast channel(s) {broadcast}")
        if len({canonical(c) for c in channels}) != len(channels):
            raise ValueError(f"a channel is listed twice (sms is sms-twilio): {channels}")
        return channels

    @model_validator(mode="after")
    def _ordered(self) -> Escalation:
        times = [s.after_min for s in self.steps]
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError("escalation steps must have strictly increasing after_min, got "
                             f"[{', '.join(f'{t:g}' for t in times)}]")
        tiers = [s.tier for s in self.steps]
        order = list(_TIER_DIGITS)  # county, city, province
        if any(order.index(b) <= order.index(a) for a, b in zip(tiers, tiers[1:])):
            raise ValueError(f"escalation climbs county -> city -> province, each tier once, got {tiers}")
        return self


class RateLimit(_Model):
    max_per_recipient: Annotated[int, Field(gt=0)] = 50
    """Mainland providers cap notification SMS per number (STANDARDS.md: 50 per 24 h)."""
    window_h: Annotated[float, Field(gt=0)] = 24.0
    red_reserve: Annotated[int, Field(ge=0)] = 5
    """Non-red messages stop this many short of the cap, so red still fits under it."""


class HttpSettings(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8090
    public_url: str | None = None
    """Base URL Twilio posts status callbacks to (signatures are computed over it)."""


class ChannelAlarm(_Model):
    """When a channel counts as failing: after ``after_failures`` failed attempts in a row or
    ``after_min`` minutes since the first of them, whichever comes first. One success clears it."""

    after_failures: Annotated[int, Field(ge=1)] = 5
    after_min: Annotated[float, Field(gt=0)] = 2.0


class NotifySettings(_Model):
    group_wait_s: Annotated[float, Field(ge=0)] = 30.0
    """Changes of one site within this window go out as one message per recipient; red never waits."""
    rate_limit: RateLimit = RateLimit()
    escalation: Escalation = Escalation()
    http: HttpSettings = HttpSettings()
    sms_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    channel_alarm: ChannelAlarm = ChannelAlarm()
    channels: ChannelsSettings = ChannelsSettings()
    """Settings of the channels beyond Twilio SMS and CAP (config/channels.py)."""
    inhibit: list[InhibitRule] = list(DEFAULT_INHIBIT_RULES)
    """Inhibition rules, the first match naming the reason (config/inhibit.py); [] inhibits nothing."""
