"""API: the regional plans' indicators (docs/INDICATORS.md), scoped to what the user sees.

- ``GET /api/indicators/coverage?days=N``: public warning coverage of the red episodes raised in
  the last N days (:mod:`alerts.coverage`), per episode and zone, with the people not reached;
- ``GET /api/indicators/safety?days=N``: the enterprise safety index of the last N local days
  (:mod:`alerts.safety_index`), ranked lowest mean first, with its trend and today's components.

Operators and admins see everything; an officer sees the red episodes of their enterprise's sites
(and those sites' zones), the residents not reached with their numbers masked but for the last 4
digits (as ``/api/config`` shows numbers: the centre phones them), and their own enterprise's
index only.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from alerts.coverage import coverage
from alerts.safety_index import safety_index
from console.api_config import mask_phone
from console.api_models import _Out, iso
from console.auth import User, api_user, context, visible_site_ids

__all__ = ["CoverageView", "SafetyView", "router"]

router = APIRouter(prefix="/api/indicators", tags=["indicators"])
CurrentUser = Annotated[User, Depends(api_user)]
_401 = {401: {"description": "not logged in"}}


class NotReached(_Out):
    name: str
    phone: str
    language: str
    outcome: Literal["awaiting_receipt", "pending", "failed", "suppressed", "not_sent"]
    channel: str | None
    reason: str | None


class Loudspeakers(_Out):
    state: Literal["sent", "covered", "pending", "failed", "suppressed", "none"]
    identifier: str | None
    sounded: bool


class ZoneCoverage(_Out):
    zone: str
    zone_name: str
    subscribers: int
    delivered: int
    share: float | None
    met: bool
    loudspeakers: Loudspeakers
    not_reached: list[NotReached]


class EpisodeCoverage(_Out):
    episode: str
    site: str
    site_name: str
    enterprise: str
    subject: str
    rule: str
    state: str
    false_alarm: bool
    raised_at: str
    zones: list[ZoneCoverage]


class ZoneTally(_Out):
    zone: str
    zone_name: str
    episodes: int
    subscribers: int
    delivered: int
    met: int
    sounded: int
    share: float | None


class CoverageView(_Out):
    since: str
    until: str
    target: float
    episodes: list[EpisodeCoverage]
    zones: list[ZoneTally]


class EnterpriseIndex(_Out):
    rank: int
    enterprise: str
    sites: list[str]
    sensors: int
    mean: float | None
    index: float | None
    change: float | None
    trend: list[float | None]
    today: dict[str, dict[str, Any]]
    """Today's components: each ``score`` (None: does not apply) and the counts it comes from."""


class SafetyView(_Out):
    as_of: str
    dates: list[str]
    weights: dict[str, float]
    ack_level: str
    ack_due_min: float
    repair_due_h: float
    enterprises: list[EnterpriseIndex]


Days = Annotated[int, Query(ge=1, le=90, description="Red episodes raised in the last N days")]
IndexDays = Annotated[int | None, Query(ge=1, le=90, description="Local days of the trend, today included "
                                                                   "(default indicators.safety_index.trend_days)")]


@router.get("/coverage", response_model=CoverageView, responses=_401)
def coverage_view(request: Request, user: CurrentUser, days: Days = 7) -> dict[str, Any]:
    ctx = context(request)
    now = ctx.now()
    sites = None if user.sees_all else visible_site_ids(user, ctx.config)
    data = coverage(ctx.store, ctx.config, now - dt.timedelta(days=days), now, sites=sites,
                    language=user.language)
    for e in data["episodes"]:
        e["raised_at"] = iso(e["raised_at"])
        if not user.sees_all:  # residents' numbers are for the centre that phones them
            for z in e["zones"]:
                for p in z["not_reached"]:
                    p["phone"] = mask_phone(p["phone"])
    return {**data, "since": iso(data["since"]), "until": iso(data["until"])}


@router.get("/safety", response_model=SafetyView, responses=_401)
def safety_view(request: Request, user: CurrentUser, days: IndexDays = None) -> dict[str, Any]:
    ctx = context(request)
    mine = None if user.sees_all else {user.enterprise or ""}
    data = safety_index(ctx.store, ctx.config, ctx.now(), days=days, enterprises=mine)
    for r in data["enterprises"]:
        del r["days"]  # the trend and today's components are what the page shows
    return {**data, "as_of": iso(data["as_of"])}
