"""The JSON shapes of the console API (docs/CONSOLE.md) and the pure functions that build them
from store rows, the configuration and the live state. Pydantic models give the OpenAPI document
(``/api/openapi.json``) its schemas, which the schemathesis test holds the answers to."""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from alerts.store import Action, Episode, Notification, Silence
from config.models import Config, Site, level_rank
from console.live import LiveState

__all__ = [
    "AuditEntry", "LoginBody", "MapView", "Me", "NotificationView", "QualityView", "SeriesView",
    "SilenceBody", "SilenceView", "SiteDetail", "SiteSummary", "UserBody", "UserView", "WarningDetail",
    "WarningView", "audit_view", "circle_polygon", "iso", "notification_view", "silence_view",
    "site_name", "site_summary", "warning_view",
]

Level = Literal["normal", "blue", "yellow", "orange", "red"]
#: Text from a user: no NUL character (PostgreSQL cannot store one in text or JSON).
Text = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
EARLIEST, LATEST = 2000, 2100
"""Years a silence may start or end in (beyond them the database's date type overflows)."""


def _plausible(value: dt.datetime) -> dt.datetime:
    # checked in UTC too (an offset may carry a time past the bounds), but only once the year
    # itself is in range: converting year 9999 at -05:00 would overflow
    if not EARLIEST <= value.year <= LATEST or (
            value.tzinfo is not None and not EARLIEST <= value.astimezone(dt.UTC).year <= LATEST):
        raise ValueError(f"the year must be between {EARLIEST} and {LATEST}")
    return value


PlausibleTime = Annotated[dt.datetime, AfterValidator(_plausible)]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginBody(BaseModel):
    username: Text = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class Me(_Out):
    username: str
    role: Literal["operator", "officer", "admin"]
    enterprise: str | None
    csrf: str
    language: str = "zh-CN"


class SiteSummary(_Out):
    id: str
    name: str
    name_en: str | None
    kind: str
    enterprise: str
    region: str
    lat: float
    lon: float
    level: Level
    offline: bool
    active_warnings: int


class Threshold(_Out):
    rule: str
    direction: Literal["high", "low"]
    level: Level
    value: float


class SensorView(_Out):
    id: str
    quantity: str
    unit: str
    value: float | None
    ts_ms: int | None
    status: Literal["ok", "offline", "fault", "unknown"]
    fault: Literal["stuck", "out_of_range", "spike", "offline"] | None
    since_ms: int | None = None
    thresholds: list[Threshold]


class WarningView(_Out):
    id: str
    site: str
    site_name: str
    enterprise: str
    subject: str
    rule: str
    kind: str
    """The site kind: chemical, tailings, rain."""
    level: Level
    peak: Level
    state: Literal["active", "acknowledged", "cleared", "closed"]
    raised_at: str
    age_s: int
    last_value: float | None
    unit: str
    escalation_started: bool
    """True while the 叫应 escalation chain runs: the episode reached the escalation level and
    is still active (not acknowledged, cleared or closed)."""
    escalation_since: str | None = None
    acknowledged_by: str | None
    acknowledged_at: str | None
    closed_by: str | None
    closed_at: str | None
    close_reason: str | None = None
    false_alarm: bool = False


class LevelChangeView(_Out):
    kind: str
    level: Level
    previous: Level
    value: float
    threshold: float | None
    ts_ms: int
    recorded_at: str


class ActionView(_Out):
    at: str
    actor: str
    action: str
    category: str | None
    text: str | None


class WarningDetail(WarningView):
    changes: list[LevelChangeView]
    actions: list[ActionView]


class SiteDetail(SiteSummary):
    sensors: list[SensorView]
    history: list[WarningView]


class SeriesView(_Out):
    sensor: str
    unit: str
    points: list[tuple[int, float]]
    thresholds: list[Threshold]
    source: Literal["live", "history"] = "live"


class ZoneView(_Out):
    id: str
    name: str
    polygon: list[tuple[float, float]]
    sites: list[str] = []
    """The sites that affect the zone (its own zone, extra zones, hazard radius)."""


class MapView(_Out):
    bounds: tuple[float, float, float, float]
    zones: list[ZoneView]
    sites: list[SiteSummary]


class NotificationView(_Out):
    id: int
    created_at: str
    sent_at: str | None
    episode: str
    site: str
    channel: str
    recipient: str
    name: str
    role: str
    level: str
    kind: str
    status: str
    delivery_status: str | None
    error_code: int | None
    error: str | None
    failed: bool


class SensorQuality(_Out):
    site: str
    sensor: str
    enterprise: str
    status: Literal["ok", "offline", "fault", "unknown"]
    fault: str | None
    since_ms: int | None


class OnlineRate(_Out):
    enterprise: str
    rate_24h: float
    sensors: int


class QualityView(_Out):
    sensors: list[SensorQuality]
    online_rate: list[OnlineRate]


class SilenceBody(BaseModel):
    kind: Literal["silence", "maintenance"] = "silence"
    matcher: dict[Text, Text | None]
    starts_at: PlausibleTime | None = None
    """Default: now. Years 2000..2100."""
    ends_at: PlausibleTime
    reason: Text = Field(max_length=2000)


class SilenceView(_Out):
    id: int
    kind: str
    matcher: dict[str, str]
    starts_at: str
    ends_at: str
    created_by: str
    reason: str
    ended_at: str | None
    ended_by: str | None = None
    active: bool


class AuditEntry(_Out):
    at: str
    actor: str
    action: str
    episode_id: str | None
    silence_id: int | None
    category: str | None
    text: str | None


class UserBody(BaseModel):
    username: Text = Field(max_length=64)
    password: str = Field(max_length=1024)
    role: Literal["operator", "officer", "admin"]
    enterprise: Text | None = Field(default=None, max_length=128)
    language: Literal["zh-CN", "en"] = "zh-CN"


class UserView(_Out):
    username: str
    role: str
    enterprise: str | None
    language: str
    disabled: bool
    created_at: str
    created_by: str


class DisposeBody(BaseModel):
    category: Text = Field(max_length=64)
    text: Text = Field(max_length=4000)


class CloseBody(BaseModel):
    reason: Text | None = Field(default=None, max_length=4000)


# --- builders ---------------------------------------------------------------------------------


def iso(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z``, milliseconds."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def site_name(config: Config, site_id: str, lang: str) -> str:
    try:
        site = config.site(site_id)
    except KeyError:
        return site_id
    return site.name_en if lang == "en" and site.name_en else site.name


def warning_view(ep: Episode, config: Config, now: dt.datetime, lang: str) -> dict[str, Any]:
    return {
        "id": ep.id, "site": ep.site, "site_name": site_name(config, ep.site, lang),
        "enterprise": ep.enterprise, "subject": ep.subject, "rule": ep.rule, "kind": ep.kind,
        "level": ep.level, "peak": ep.peak, "state": ep.state, "raised_at": iso(ep.raised_at),
        "age_s": max(0, int((now - ep.raised_at).total_seconds())),
        "last_value": ep.last_value if ep.last_value is None or math.isfinite(ep.last_value) else None,
        # the chain runs only while the episode is active (alerts/pipeline.py tick): an
        # acknowledgement, the all-clear or closing stops it
        "unit": ep.unit, "escalation_started": ep.escalation_since is not None and ep.state == "active",
        "escalation_since": iso(ep.escalation_since),
        "acknowledged_by": ep.acknowledged_by, "acknowledged_at": iso(ep.acknowledged_at),
        "closed_by": ep.closed_by, "closed_at": iso(ep.closed_at), "close_reason": ep.close_reason,
        "false_alarm": bool(ep.false_alarm),
    }


def thresholds(site: Site, sensor_id: str) -> list[dict[str, Any]]:
    sensor = next(x for x in site.sensors if x.id == sensor_id)
    return [{"rule": t.rule, "direction": t.direction, "level": step.level, "value": step.value}
            for t in sensor.thresholds for step in t.ladder]


def site_summary(site: Site, live: LiveState, open_episodes: dict[str, str]) -> dict[str, Any]:
    """``open_episodes``: episode id -> level of the site's active or acknowledged episodes."""
    with_live = {**open_episodes, **live.warnings.get(site.id, {})}
    levels = [live.site_level(site.id), *open_episodes.values()]
    return {"id": site.id, "name": site.name, "name_en": site.name_en, "kind": site.kind,
            "enterprise": site.enterprise, "region": site.region, "lat": site.lat, "lon": site.lon,
            "level": max(levels, key=level_rank), "offline": live.site_offline(site.id),
            "active_warnings": len(with_live)}


def circle_polygon(lat: float, lon: float, radius_km: float, points: int = 48) -> list[tuple[float, float]]:
    """A closed ring of ``points`` [lon, lat] positions around a circle (equirectangular; fine for
    the few kilometres of a zone)."""
    dlat = radius_km / 111.32
    dlon = radius_km / (111.32 * max(math.cos(math.radians(lat)), 1e-6))
    ring = [(round(lon + dlon * math.cos(2 * math.pi * k / points), 6),
             round(lat + dlat * math.sin(2 * math.pi * k / points), 6)) for k in range(points)]
    return [*ring, ring[0]]


def notification_view(n: Notification) -> dict[str, Any]:
    failed = n.status == "failed" or n.delivery_status in ("failed", "undelivered")
    return {"id": n.id, "created_at": iso(n.created_at), "sent_at": iso(n.sent_at),
            "episode": n.episode, "site": n.site, "channel": n.channel, "recipient": n.recipient,
            "name": n.name, "role": n.role, "level": n.level, "kind": n.kind, "status": n.status,
            "delivery_status": n.delivery_status, "error_code": n.error_code, "error": n.error,
            "failed": failed}


def silence_view(s: Silence, now: dt.datetime) -> dict[str, Any]:
    from alerts.silences import is_active

    return {"id": s.id, "kind": s.kind, "matcher": dict(s.matcher), "starts_at": iso(s.starts_at),
            "ends_at": iso(s.ends_at), "created_by": s.created_by, "reason": s.reason,
            "ended_at": iso(s.ended_at), "ended_by": s.ended_by, "active": is_active(s, now)}


def audit_view(a: Action) -> dict[str, Any]:
    return {"at": iso(a.at), "actor": a.actor, "action": a.action, "episode_id": a.episode_id,
            "silence_id": a.silence_id, "category": a.category, "text": a.text}
