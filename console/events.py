"""The live event stream (``GET /api/events``, server-sent events) and the episode poller.

Per connection: ``warning``, ``health`` and ``episode`` events arrive on the connection's queue
(:class:`console.live.Subscription`) and go out at once; every 0.5 s the connection sends the
readings that changed since its last look (one ``readings`` event with a list, from the live
state's sequence numbers) and a ``site`` event for each site whose level or offline state
changed (computed once per tick for all connections, :class:`SiteStates`); ``: ping`` every
15 s. Everything is filtered by what the user sees.

:func:`poll_episodes` is one task per app: every ``console.episode_poll_s`` it reads the episodes
whose ``updated_at`` moved and publishes each as an ``episode`` event (in both languages; the
stream picks the user's), and it refreshes the open episodes per site that site levels use.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select

from alerts.store import Episode, Store
from console import auth
from console.api_models import site_summary, warning_view
from console.api_sites import open_episodes

if TYPE_CHECKING:
    from console.app import ConsoleContext

__all__ = ["SiteStates", "format_event", "poll_episodes", "router"]

log = logging.getLogger("hazwatch.console.events")

router = APIRouter(prefix="/api", tags=["events"])

TICK_S = 0.5
PING_S = 15.0
SESSION_CHECK_S = 30.0
#: Episodes are re-read this far behind the newest ``updated_at`` seen: a transaction that
#: stamped its row earlier may commit after a poll.
LOOKBACK = dt.timedelta(seconds=5)


def format_event(name: str, data: Any) -> str:
    """One SSE frame: ``event: NAME`` and the JSON data on one ``data:`` line."""
    return f"event: {name}\ndata: {orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS).decode()}\n\n"


def _changed(store: Store, since: dt.datetime | None, first: bool
             ) -> tuple[list[Episode], dt.datetime | None, dict[str, dict[str, str]]]:
    """Episodes changed since ``since`` (all when None), and the newest ``updated_at``; on the
    ``first`` poll only the newest time (what changed before the console started is no event)."""
    with store.session() as s:
        if first:
            rows: list[Episode] = []
            newest = s.scalar(select(func.max(Episode.updated_at)))
        else:
            q = select(Episode).order_by(Episode.updated_at)
            if since is not None:
                q = q.where(Episode.updated_at >= since - LOOKBACK)
            rows = list(s.scalars(q).all())
            newest = max([t for t in (since, *(r.updated_at for r in rows)) if t is not None],
                         default=None)
    return rows, newest, open_episodes(store)


async def poll_episodes(ctx: ConsoleContext) -> None:
    """Publish ``episode`` events for rows that changed; runs until cancelled."""
    cursor: dt.datetime | None = None
    started = False
    seen: dict[str, tuple[Any, ...]] = {}  # episode id -> what the last event showed
    while True:
        try:
            rows, newest, opened = await asyncio.to_thread(_changed, ctx.store, cursor, not started)
            ctx.open_episodes = opened
            now = ctx.now()
            for ep in rows:
                mark = (ep.updated_at, ep.state, ep.level, ep.peak, ep.last_value,
                        ep.acknowledged_by, ep.closed_at, ep.false_alarm)
                if seen.get(ep.id) == mark:
                    continue
                seen[ep.id] = mark
                ctx.live.publish("episode", {
                    "site": ep.site,
                    "views": {lang: warning_view(ep, ctx.config, now, lang) for lang in ("zh-CN", "en")}})
            if newest is not None:
                cursor = newest
                for eid in [e for e, m in seen.items() if m[0] < newest - 2 * LOOKBACK]:
                    del seen[eid]
            started = True
        except Exception:  # noqa: BLE001 - a database hiccup must not end the poller
            log.exception("episode poll failed; trying again")
        await asyncio.sleep(ctx.settings.episode_poll_s)


@router.get("/events", include_in_schema=False)
async def events(request: Request) -> StreamingResponse:
    """``text/event-stream``; 401 without a session. Not in the OpenAPI document (an endless
    stream is no operation a schema tool can call)."""
    user = await asyncio.to_thread(auth.optional_user, request)
    if user is None:
        raise HTTPException(401, "未登录" if request.query_params.get("lang") != "en" else "not logged in")
    ctx = auth.context(request)
    token = request.cookies.get(auth.SESSION_COOKIE, "")
    return StreamingResponse(_stream(ctx, user, token), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


class SiteStates:
    """The site summaries every event stream shares: recomputed at most once per tick by
    whichever stream asks first, with a log of the sites whose level or offline state changed,
    so that a stream's own work per tick is O(changed sites), not O(sites)."""

    LOG_SIZE = 10_000

    def __init__(self) -> None:
        self.generation = 0
        """Counts the refreshes in which some site changed."""
        self.summaries: dict[str, dict[str, Any]] = {}
        self._state: dict[str, tuple[str, bool]] = {}
        self._log: deque[tuple[int, str]] = deque(maxlen=self.LOG_SIZE)
        self._at = -math.inf

    def refresh(self, ctx: ConsoleContext, now: float) -> None:
        """Recompute every site's summary unless done within the last half tick (``now``: the
        event loop's time)."""
        if now - self._at < TICK_S / 2:
            return
        self._at = now
        opened = ctx.open_episodes
        changed = []
        for site in ctx.config.sites:
            summary = site_summary(site, ctx.live, opened.get(site.id, {}))
            self.summaries[site.id] = summary
            state = (summary["level"], summary["offline"])
            if self._state.get(site.id) != state:
                self._state[site.id] = state
                changed.append(site.id)
        if changed:
            self.generation += 1
            self._log.extend((self.generation, site_id) for site_id in changed)

    def changed_since(self, generation: int) -> tuple[int, list[dict[str, Any]]]:
        """(the current generation, the summaries of the sites that changed after
        ``generation``); every site's when the log no longer reaches back that far."""
        if generation == self.generation:
            return generation, []
        oldest = self._log[0][0]  # the log is not empty: some site changed after ``generation``
        if oldest > generation + 1 or (oldest == generation + 1 and len(self._log) == self.LOG_SIZE):
            return self.generation, list(self.summaries.values())  # trimmed: resend them all
        changed: dict[str, None] = {}
        for gen, site_id in reversed(self._log):
            if gen <= generation:
                break
            changed[site_id] = None
        return self.generation, [self.summaries[s] for s in changed]


async def _stream(ctx: ConsoleContext, user: auth.User, token: str) -> AsyncIterator[str]:
    sites = auth.visible_site_ids(user, ctx.config)
    live = ctx.live
    sub = live.subscribe()
    loop = asyncio.get_running_loop()
    try:
        # the baseline before the first byte: whatever changes once the client sees the stream
        # open is an event, never part of the baseline
        seq = live.current_seq
        shared = ctx.site_states
        shared.refresh(ctx, loop.time())
        generation = shared.generation
        yield "retry: 3000\n\n"
        next_tick, next_ping = loop.time() + TICK_S, loop.time() + PING_S
        next_check = loop.time() + SESSION_CHECK_S
        while not sub.overflowed and not ctx.stopping.is_set():
            try:
                name, data = await asyncio.wait_for(sub.queue.get(), max(0.0, next_tick - loop.time()))
            except TimeoutError:
                pass
            else:
                if data.get("site") in sites:
                    if name == "episode":
                        yield format_event("episode", data["views"][user.language])
                    else:
                        yield format_event(name, data)
                continue
            t = loop.time()
            next_tick = t + TICK_S
            seq, readings = live.changed_since(seq, sites)
            if readings:
                yield format_event("readings", readings)
            shared.refresh(ctx, t)
            generation, changed = shared.changed_since(generation)
            for summary in changed:
                if summary["id"] in sites:
                    yield format_event("site", summary)
            if t >= next_ping:
                next_ping = t + PING_S
                yield ": ping\n\n"
            if t >= next_check:  # logged out or expired: end the stream (the page goes to /login)
                next_check = t + SESSION_CHECK_S
                if await asyncio.to_thread(ctx.users.session, token, ctx.now()) is None:
                    return
    finally:
        live.unsubscribe(sub)
