"""API: the map, sites, sensors, trend series and data quality, all scoped to what the user sees
(an officer asking for another enterprise's site gets 404, as if it did not exist)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import select

from alerts.episodes import EpisodeService
from alerts.store import Episode, Store
from config.models import Site
from console.api_models import (
    MapView, QualityView, SeriesView, SiteDetail, SiteSummary, circle_polygon, site_summary,
    thresholds, warning_view,
)
from console.auth import User, api_user, context, visible_site_ids
from history.reader import thin

__all__ = ["open_episodes", "router"]

log = logging.getLogger("hazwatch.console")
router = APIRouter(prefix="/api", tags=["sites"])
CurrentUser = Annotated[User, Depends(api_user)]
_404 = {401: {"description": "not logged in"}, 404: {"description": "no such site (for this user)"}}


def open_episodes(store: Store) -> dict[str, dict[str, str]]:
    """site -> {episode id: level} of the active and acknowledged episodes in the store."""
    out: dict[str, dict[str, str]] = {}
    with store.session() as s:
        rows = s.execute(select(Episode.id, Episode.site, Episode.level)
                         .where(Episode.state.in_(("active", "acknowledged")))).all()
    for eid, site, level in rows:
        out.setdefault(site, {})[eid] = level
    return out


def visible_sites(request: Request, user: User) -> list[Site]:
    ctx = context(request)
    seen = visible_site_ids(user, ctx.config)
    return [s for s in ctx.config.sites if s.id in seen]


def _site(request: Request, user: User, site_id: str) -> Site:
    ctx = context(request)
    if site_id not in visible_site_ids(user, ctx.config):
        raise HTTPException(404, "没有此站点" if user.language == "zh-CN" else f"no site {site_id!r}")
    return ctx.config.site(site_id)


def summaries(request: Request, user: User) -> list[dict[str, Any]]:
    ctx = context(request)
    opened = open_episodes(ctx.store)
    return [site_summary(s, ctx.live, opened.get(s.id, {})) for s in visible_sites(request, user)]


@router.get("/map", response_model=MapView, responses={401: {"description": "not logged in"}})
def map_view(request: Request, user: CurrentUser) -> dict[str, Any]:
    """Zone outlines (circles as 48-point polygons) and site summaries; bounds cover both."""
    ctx = context(request)
    sites = summaries(request, user)
    affecting: dict[str, list[str]] = {}  # zone -> the visible sites that affect it
    for site in visible_sites(request, user):
        for z in ctx.config.affected_zones(site.id):
            affecting.setdefault(z, []).append(site.id)
    zones = []
    for z in ctx.config.zones:
        if not user.sees_all and z.id not in affecting:
            continue
        if z.circle is not None:
            ring = circle_polygon(z.circle.lat, z.circle.lon, z.circle.radius_km)
        else:
            assert z.polygon is not None
            ring = [(float(lon), float(lat)) for lon, lat in z.polygon.coordinates[0]]
        name = z.name_en if user.language == "en" and z.name_en else z.name
        zones.append({"id": z.id, "name": name, "polygon": ring, "sites": affecting.get(z.id, [])})
    lons = [s["lon"] for s in sites] + [p[0] for z in zones for p in z["polygon"]]
    lats = [s["lat"] for s in sites] + [p[1] for z in zones for p in z["polygon"]]
    bounds = (min(lons), min(lats), max(lons), max(lats)) if lons else (73.0, 18.0, 135.0, 54.0)
    return {"bounds": bounds, "zones": zones, "sites": sites}


@router.get("/sites", response_model=list[SiteSummary], responses={401: {"description": "not logged in"}})
def list_sites(request: Request, user: CurrentUser) -> list[dict[str, Any]]:
    return summaries(request, user)


@router.get("/sites/{site_id}", response_model=SiteDetail, responses=_404)
def site_detail(site_id: str, request: Request, user: CurrentUser) -> dict[str, Any]:
    ctx = context(request)
    site = _site(request, user, site_id)
    opened = open_episodes(ctx.store).get(site.id, {})
    sensors = []
    for x in site.sensors:
        live = ctx.live.sensor(site.id, x.id)
        sensors.append({"id": x.id, "quantity": x.quantity, "unit": x.unit, "value": live.value,
                        "ts_ms": live.ts_ms, "status": live.status, "fault": live.fault,
                        "since_ms": live.since_ms, "thresholds": thresholds(site, x.id)})
    now = ctx.now()
    history = [warning_view(ep, ctx.config, now, user.language)
               for ep in EpisodeService(ctx.store).list(site=site.id, limit=50)]
    return {**site_summary(site, ctx.live, opened), "sensors": sensors, "history": history}


@router.get("/sites/{site_id}/series", response_model=SeriesView, responses=_404)
def series(site_id: str, request: Request, user: CurrentUser,
           sensor: Annotated[str, Query(max_length=64)],
           hours: Annotated[float, Query(gt=0, le=720)] = 6.0) -> dict[str, Any]:
    """The trend of one sensor over the last ``hours``: from the live view within its history
    (24 h by default), from the history store beyond it (up to 30 days) when one is configured;
    at most 2000 points, each time bucket's minimum and maximum. ``source`` says which: ``live``,
    ``history``, or ``live`` again when the store did not answer."""
    ctx = context(request)
    site = _site(request, user, site_id)
    x = next((x for x in site.sensors if x.id == sensor), None)
    if x is None:
        raise HTTPException(404, "没有此传感器" if user.language == "zh-CN" else f"no sensor {sensor!r}")
    now_ms = int(ctx.now().timestamp() * 1000)
    since = int(now_ms - hours * 3_600_000)
    out = {"sensor": x.id, "unit": x.unit, "thresholds": thresholds(site, x.id), "source": "live"}
    if ctx.history is not None and hours > ctx.settings.history_hours:
        try:
            return {**out, "source": "history",
                    "points": thin(ctx.history.readings(site.id, x.id, since, now_ms), 2000)}
        except Exception:  # noqa: BLE001 - the store is down: what the live view has, and say so
            log.warning("history store did not answer for %s/%s; live trend instead", site.id, x.id, exc_info=True)
    return {**out, "points": ctx.live.series(site.id, x.id, since, 2000)}


@router.get("/quality", response_model=QualityView, responses={401: {"description": "not logged in"}})
def quality(request: Request, user: CurrentUser) -> dict[str, Any]:
    """Sensors that are not plainly ok (offline, in fault, a recent spike, or never heard from),
    and the online rate per enterprise over the live history (24 h)."""
    ctx = context(request)
    seen = visible_site_ids(user, ctx.config)
    enterprise = {s.id: s.enterprise for s in ctx.config.sites}
    sensors = [{"site": x.site, "sensor": x.sensor, "enterprise": enterprise[x.site],
                "status": x.status, "fault": x.fault, "since_ms": x.since_ms}
               for x in ctx.live.sensors(seen) if x.status != "ok" or x.fault is not None]
    mine = {enterprise[s] for s in seen}
    rates = [r for r in ctx.live.online_rate() if r["enterprise"] in mine]
    return {"sensors": sensors, "online_rate": rates}
