"""API: warnings (episodes) and the actions on them, notifications, silences and the audit log.

Actions go through :class:`alerts.episodes.EpisodeService` and :class:`alerts.silences.SilenceService`
with the logged-in user as actor, so each writes its audit row. Lifecycle errors map to HTTP:
UnknownEpisode -> 404, InvalidTransition -> 409, InvalidArgument / InvalidSilence -> 422.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from sqlalchemy import case, or_, select

from alerts.episodes import (
    STATES, InvalidArgument, InvalidTransition, UnknownEpisode,
)
from alerts.maintenance_feed import FeedOutcome, tell_engine
from alerts.silences import InvalidSilence, UnknownSilence, matcher_site
from alerts.store import Action, Episode, LevelChange, Notification
from config.models import LEVELS, level_rank
from console.api_models import (
    AuditEntry, CloseBody, DisposeBody, NotificationView, SilenceBody, SilenceView, WarningDetail,
    WarningView, audit_view, iso, notification_view, silence_view, warning_view,
)
from console.auth import User, api_user, can_see_site, context, require_role, visible_site_ids

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["warnings"])
CurrentUser = Annotated[User, Depends(api_user)]
_R = {401: {"description": "not logged in"}}
_ACT = {**_R, 403: {"description": "missing or wrong CSRF token"},
        404: {"description": "no such warning (for this user)"},
        409: {"description": "the warning's state does not allow this action"},
        422: {"description": "bad category or text"}}
Level = Literal["normal", "blue", "yellow", "orange", "red"]
State = Literal["active", "acknowledged", "cleared", "closed", "open", "all"]


#: The level's rank in SQL (config.models.level_rank), for sorting most severe first.
_LEVEL_RANK = case({lv: level_rank(lv) for lv in LEVELS}, value=Episode.level, else_=-1)


def _not_found(user: User, what: str) -> HTTPException:
    return HTTPException(404, f"没有此{what}" if user.language == "zh-CN" else f"no such {what}")


def _episode(request: Request, user: User, episode_id: str) -> Episode:
    ctx = context(request)
    with ctx.store.session() as s:
        ep = s.get(Episode, episode_id)
    if ep is None or not can_see_site(user, ctx.config, ep.site):
        raise _not_found(user, "预警" if user.language == "zh-CN" else "warning")
    return ep


@router.get("/warnings", response_model=list[WarningView], responses=_R)
def list_warnings(request: Request, user: CurrentUser,
                  level: Level | None = None, kind: Annotated[str | None, Query(max_length=16)] = None,
                  enterprise: Annotated[str | None, Query(max_length=128)] = None,
                  state: State | None = None, site: Annotated[str | None, Query(max_length=64)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 500) -> list[dict[str, Any]]:
    """Warnings, most severe first, then newest first. ``state``: one lifecycle state, ``open``
    (active or acknowledged), ``all``; by default every episode that is not closed."""
    ctx = context(request)
    q = select(Episode).where(Episode.site.in_(visible_site_ids(user, ctx.config)))
    if state is None:
        q = q.where(Episode.state != "closed")
    elif state == "open":
        q = q.where(Episode.state.in_(("active", "acknowledged")))
    elif state in STATES:
        q = q.where(Episode.state == state)
    for column, value in ((Episode.level, level), (Episode.kind, kind),
                          (Episode.enterprise, enterprise), (Episode.site, site)):
        if value is not None:
            q = q.where(column == value)
    # sorted in SQL, so that ``limit`` keeps the most severe, not merely the newest
    q = q.order_by(_LEVEL_RANK.desc(), Episode.raised_at.desc(), Episode.id).limit(limit)
    with ctx.store.session() as s:
        rows = s.scalars(q).all()
    now = ctx.now()
    return [warning_view(ep, ctx.config, now, user.language) for ep in rows]


def _detail(request: Request, user: User, ep: Episode) -> dict[str, Any]:
    ctx = context(request)
    with ctx.store.session() as s:
        changes = s.scalars(select(LevelChange).where(LevelChange.episode_id == ep.id)
                            .order_by(LevelChange.ts, LevelChange.id)).all()
        actions = s.scalars(select(Action).where(Action.episode_id == ep.id)
                            .order_by(Action.at, Action.id)).all()
    return {**warning_view(ep, ctx.config, ctx.now(), user.language),
            "changes": [{"kind": c.kind, "level": c.level, "previous": c.previous, "value": c.value,
                         "threshold": c.threshold, "ts_ms": c.ts, "recorded_at": iso(c.recorded_at)}
                        for c in changes],
            "actions": [{"at": iso(a.at), "actor": a.actor, "action": a.action,
                         "category": a.category, "text": a.text} for a in actions]}


@router.get("/warnings/{episode_id}", response_model=WarningDetail, responses={
    **_R, 404: {"description": "no such warning (for this user)"}})
def warning_detail(episode_id: str, request: Request, user: CurrentUser) -> dict[str, Any]:
    return _detail(request, user, _episode(request, user, episode_id))


@contextmanager
def _lifecycle(user: User) -> Iterator[None]:
    try:
        yield
    except UnknownEpisode:
        raise _not_found(user, "预警" if user.language == "zh-CN" else "warning") from None
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from None
    except InvalidArgument as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/warnings/{episode_id}/ack", response_model=WarningDetail, responses=_ACT)
def acknowledge(episode_id: str, request: Request, user: CurrentUser) -> dict[str, Any]:
    """Acknowledge (叫应): records who answered and when; active -> acknowledged."""
    ctx = context(request)
    _episode(request, user, episode_id)
    with _lifecycle(user):
        ep = ctx.episodes.acknowledge(episode_id, by=user.username, now=ctx.now())
    return _detail(request, user, ep)


@router.post("/warnings/{episode_id}/dispose", response_model=WarningDetail, responses=_ACT)
def dispose(episode_id: str, body: DisposeBody, request: Request, user: CurrentUser) -> dict[str, Any]:
    """Disposition feedback (处置反馈): a category (on_site_check, repair, evacuation,
    false_alarm, other) and a text."""
    ctx = context(request)
    _episode(request, user, episode_id)
    with _lifecycle(user):
        ep = ctx.episodes.dispose(episode_id, by=user.username, category=body.category,
                                  text=body.text, now=ctx.now())
    return _detail(request, user, ep)


@router.post("/warnings/{episode_id}/close", response_model=WarningDetail, responses=_ACT)
def close(episode_id: str, body: CloseBody, request: Request, user: CurrentUser) -> dict[str, Any]:
    """Close a cleared warning, or one not yet cleared with a reason. Final."""
    ctx = context(request)
    _episode(request, user, episode_id)
    with _lifecycle(user):
        ep = ctx.episodes.close(episode_id, by=user.username, reason=body.reason, now=ctx.now())
    return _detail(request, user, ep)


@router.get("/notifications", response_model=list[NotificationView], tags=["notifications"],
            responses=_R)
def notifications(request: Request, user: CurrentUser,
                  status: Annotated[str | None, Query(max_length=32)] = None,
                  failed: bool = False, site: Annotated[str | None, Query(max_length=64)] = None,
                  episode: Annotated[str | None, Query(max_length=64)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """What was sent, to whom, on which channel, and how delivery went; newest first.
    ``failed=true``: only failed or undelivered ones."""
    ctx = context(request)
    q = select(Notification).where(Notification.site.in_(visible_site_ids(user, ctx.config)))
    if status is not None:
        q = q.where(Notification.status == status)
    if failed:
        q = q.where(or_(Notification.status == "failed",
                        Notification.delivery_status.in_(("failed", "undelivered"))))
    if site is not None:
        q = q.where(Notification.site == site)
    if episode is not None:
        q = q.where(Notification.episode == episode)
    q = q.order_by(Notification.created_at.desc(), Notification.id.desc()).limit(limit)
    with ctx.store.session() as s:
        return [notification_view(n) for n in s.scalars(q).all()]


@router.get("/silences", response_model=list[SilenceView], tags=["silences"], responses=_R)
def list_silences(request: Request, user: CurrentUser, include_ended: bool = False) -> list[dict[str, Any]]:
    """Operators and admins see every silence. Officers see only those naming a site of their
    enterprise: one naming no site (a rule alone, a subject prefix across sites) may concern
    other enterprises, and its reason is free text."""
    ctx = context(request)
    now = ctx.now()
    silences = ctx.silences.list(include_ended=include_ended, now=now)
    if not user.sees_all:
        seen = visible_site_ids(user, ctx.config)
        silences = [s for s in silences if matcher_site(s.matcher) in seen]
    return [silence_view(s, now) for s in silences]


@router.post("/silences", response_model=SilenceView, status_code=201, tags=["silences"], responses={
    **_R, 403: {"description": "officers may not silence; or a missing or wrong CSRF token"},
    422: {"description": "bad matcher, times or reason"}})
def create_silence(body: SilenceBody, request: Request, response: Response, user: CurrentUser) -> dict[str, Any]:
    """A silence or maintenance window. The matcher names any of site, subject (exact or a
    prefix ending in ``*``), rule (at least one) and optionally max_level (orange by default).
    A maintenance window of a site also goes to the rule engine; header ``X-Hazwatch-Rule-Engine``
    says ``told``, ``not-told`` (Kafka failed: ``hazwatch silences publish ID``) or ``not-applicable``."""
    require_role(user, "operator", "admin")
    ctx = context(request)
    now = ctx.now()
    starts = body.starts_at or now
    if starts.tzinfo is None or body.ends_at.tzinfo is None:
        raise HTTPException(422, "times need a UTC offset (e.g. 2026-12-01T08:00:00+08:00)")
    try:
        silence = ctx.silences.create(body.matcher, starts, body.ends_at, created_by=user.username,
                                      reason=body.reason, kind=body.kind, now=now)
    except InvalidSilence as exc:
        raise HTTPException(422, str(exc)) from None
    _engine_header(response, tell_engine(ctx.config, silence))
    return silence_view(silence, now)


def _engine_header(response: Response, outcomes: list[FeedOutcome]) -> None:
    for o in outcomes:
        response.headers["X-Hazwatch-Rule-Engine"] = (
            "told" if o.told else "not-told" if o.failed else "not-applicable")


@router.post("/silences/{silence_id}/end", response_model=SilenceView, tags=["silences"], responses={
    **_R, 403: {"description": "officers may not end silences; or a missing or wrong CSRF token"},
    404: {"description": "no such silence"}, 409: {"description": "already over"}})
def end_silence(silence_id: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request,
                response: Response, user: CurrentUser) -> dict[str, Any]:
    require_role(user, "operator", "admin")
    ctx = context(request)
    now = ctx.now()
    try:
        silence = ctx.silences.end(silence_id, by=user.username, now=now)
    except UnknownSilence:
        raise _not_found(user, "静默" if user.language == "zh-CN" else "silence") from None
    except InvalidSilence as exc:
        raise HTTPException(409, str(exc)) from None
    _engine_header(response, tell_engine(ctx.config, silence))
    return silence_view(silence, now)


@router.get("/audit", response_model=list[AuditEntry], tags=["audit"], responses=_R)
def audit(request: Request, user: CurrentUser,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    """The audit log, newest first: log-ins, warning actions, silences, user changes. Officers
    see only the actions on their own sites' warnings."""
    ctx = context(request)
    q = select(Action).order_by(Action.at.desc(), Action.id.desc()).limit(limit)
    if not user.sees_all:
        q = q.join(Episode, Episode.id == Action.episode_id).where(
            Episode.site.in_(visible_site_ids(user, ctx.config)))
    with ctx.store.session() as s:
        return [audit_view(a) for a in s.scalars(q).all()]


