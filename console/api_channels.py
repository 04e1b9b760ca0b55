"""API: the notification channels' alarms (:mod:`alerts.channel_alarm`), for the console banner.

Operators and admins see every raised alarm; an officer gets an empty list, since a provider
outage is the centre's to handle. ``waiting`` counts that channel's notices not sent yet.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select

from alerts.channel_alarm import active_alarms
from alerts.store import Notification
from console.api_models import iso
from console.auth import User, api_user, context

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["channels"])
CurrentUser = Annotated[User, Depends(api_user)]


@router.get("/channels/alarms", responses={401: {"description": "not logged in"}})
def channel_alarms(request: Request, user: CurrentUser) -> list[dict[str, Any]]:
    if not user.sees_all:
        return []
    store = context(request).store
    out = []
    for alarm in active_alarms(store):
        with store.session() as s:
            waiting = s.scalar(select(func.count()).select_from(Notification).where(
                Notification.channel == alarm.channel,
                Notification.status.in_(("pending", "sending", "unknown")))) or 0
        out.append({"channel": alarm.channel, "failures": alarm.failures,
                    "failing_since": iso(alarm.failing_since), "raised_at": iso(alarm.raised_at),
                    "last_error": alarm.last_error, "waiting": waiting})
    return out
