"""The console's composition root: :func:`create_app` wires configuration, store and live state
into a FastAPI app (docs/CONSOLE.md). :mod:`console.service` runs it under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from alerts.episodes import EpisodeService
from alerts.silences import SilenceService
from alerts.store import Store, utcnow
from config.console import ConsoleSettings
from config.models import Config
from console import auth
from console.events import SiteStates
from console.live import LiveState
from console.live_reader import LiveReader
from history.reader import HistoryReader
from console.users import UserService

__all__ = ["ConsoleContext", "create_app"]

STATIC = Path(__file__).resolve().parent / "static"
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass
class ConsoleContext:
    """Everything a request handler needs; ``request.app.state.console``."""

    config: Config
    settings: ConsoleSettings
    store: Store
    live: LiveState
    users: UserService
    episodes: EpisodeService
    silences: SilenceService
    clock: Callable[[], dt.datetime]
    limiter: auth.LoginLimiter
    history: HistoryReader | None = None
    """Trends beyond the live view's hours (history/reader.py); None: no history store."""
    limiter_lock: threading.Lock = field(default_factory=threading.Lock)
    verify_slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(auth.VERIFY_SLOTS))
    open_episodes: dict[str, dict[str, str]] = field(default_factory=dict)
    """site -> {episode id: level} of active/acknowledged episodes, refreshed by the poller."""
    reader: LiveReader | None = None
    """The Kafka reader feeding ``live`` (None: fed by hand, as in tests)."""
    site_states: SiteStates = field(default_factory=SiteStates)
    """Site summaries shared by the event streams."""
    config_dir: Path | None = None
    """The directory ``config`` was loaded from (``GET /api/config`` checks it again, a reload reads
    it, console/reload.py); None when the configuration was built some other way (tests)."""
    own_requests: set[str] = field(default_factory=set)
    """Reload requests this console made (it has applied them already)."""
    outcomes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=200))
    """The services' reload outcomes, newest first (hazwatch/control.py), for the admin."""
    reload_lock: threading.Lock = field(default_factory=threading.Lock)
    """One configuration reload at a time (console/reload.py: the API, SIGHUP, another console)."""
    stopping: threading.Event = field(default_factory=threading.Event)
    """Set when the server begins to stop (console/service.py): the event streams end, so that an
    open browser does not hold the shutdown; the page reconnects to the next console."""

    def now(self) -> dt.datetime:
        return self.clock()


def create_app(config: Config, store: Store, live: LiveState | None = None, *,
               reader: LiveReader | None = None, clock: Callable[[], dt.datetime] | None = None,
               pages: bool = True, config_dir: Path | None = None, history: HistoryReader | None = None) -> FastAPI:
    """The console app. ``live``: a :class:`LiveState` (a fresh one by default, fed by nobody
    unless ``reader`` is given); ``reader``: started and stopped with the app; ``clock``: the
    wall clock (UTC, aware) for sessions, ages and actions (tests inject one); ``config_dir``:
    where ``config`` came from, validated again on each ``GET /api/config``."""
    from console import (
        api,
        api_channels,
        api_config,
        api_indicators,
        api_sites,
        api_warnings,
        boundaries,
        events,
    )

    settings = config.settings.console
    now = clock or utcnow
    # 1. state: the live picture (fed by the reader) and the services over the store
    if live is None:
        live = LiveState(config, history_hours=settings.history_hours,
                         clock=lambda: int(now().timestamp() * 1000))
    ctx = ConsoleContext(
        config=config, settings=settings, store=store, live=live, users=UserService(store),
        episodes=EpisodeService(store), silences=SilenceService(store), clock=now,
        limiter=auth.LoginLimiter(settings.login_max_failures, settings.login_window_s),
        reader=reader, config_dir=config_dir, history=history)

    # 2. background work: the Kafka reader thread and the episode poller task
    #    and the control topic's listener (a reload asked for by an admin here or elsewhere)
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from console.reload import reload_here
        from hazwatch.control import ControlListener

        control = None
        if reader is not None:
            reader.start()
            if config_dir is not None:
                control = ControlListener(config.settings.kafka.bootstrap, "console",
                                          lambda request: reload_here(ctx, request),
                                          on_outcome=ctx.outcomes.appendleft).start()
        poller = asyncio.create_task(events.poll_episodes(ctx), name="console-episode-poller")
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            if control is not None:
                await asyncio.to_thread(control.stop)
            if reader is not None:
                await asyncio.to_thread(reader.stop)

    # 3. the app: no Swagger UI or ReDoc (they load from a CDN); OpenAPI under /api/
    app = FastAPI(title="hazwatch console", version="1", docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    app.state.console = ctx

    # 4. CSRF on every API write but the log-in, and security headers on every answer; a NUL
    #    character in the path or query is a 422 before any handler (PostgreSQL can neither
    #    store nor compare one; JSON bodies refuse it in their models)
    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        bad = [["path"]] if "\x00" in path else []
        bad += [["query", k] for k, v in request.query_params.multi_items() if "\x00" in k or "\x00" in v]
        if bad:  # FastAPI's validation-error shape, so the answer is the documented 422
            return JSONResponse({"detail": [{"loc": loc, "type": "value_error", "msg": "含有 NUL 字符 / contains a "
                                             "NUL (\\x00) character"} for loc in bad]}, status_code=422)
        if (request.method in _WRITES and path.startswith("/api/") and path != "/api/login"):
            user = await asyncio.to_thread(auth.optional_user, request)
            if user is not None and not auth.check_csrf(request, user.csrf):
                zh = user.language == "zh-CN"
                return JSONResponse({"detail": "CSRF 令牌缺失或错误" if zh else "missing or wrong CSRF token"},
                                    status_code=403)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # 5. routes: API, event stream, pages and their assets
    app.include_router(api.router)
    app.include_router(api_sites.router)
    app.include_router(api_warnings.router)
    app.include_router(api_config.router)
    app.include_router(api_channels.router)
    app.include_router(api_indicators.router)
    app.include_router(boundaries.router)
    app.include_router(events.router)
    if pages:
        from console.pages import router as pages_router

        app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _ops_routes(app, config, store, reader)
    return app


def _ops_routes(app: FastAPI, config: Config, store: Store, reader: LiveReader | None) -> None:
    """``/metrics`` and ``/healthz`` (hazwatch/ops.py): the store, and Kafka when the live view reads it."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from alerts.ops import database_check
    from hazwatch.ops import Check, KafkaCheck, health

    checks: dict[str, Check] = {"database": lambda: database_check(store)}
    if reader is not None:
        checks["kafka"] = KafkaCheck(config.settings.kafka.bootstrap, client_id="hazwatch-console-health")
        checks["live"] = lambda: None if reader.alive else "the live view is not following Kafka (reconnecting)"

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        ok, body = health("console", checks)
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
