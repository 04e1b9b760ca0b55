"""API: health, log-in and log-out, the current user, and users (admin).

Log-in (docs/CONSOLE.md): the double-submit CSRF cookie ``hw_csrf`` must equal the
``X-CSRF-Token`` header; 5 failures per user name or client address within 5 minutes -> 429 with
``Retry-After``; every attempt is an audit row.
"""

from __future__ import annotations

import math
import secrets
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from console import auth
from console.api_models import LoginBody, Me, UserBody, UserView, iso
from console.auth import User, api_user, context, request_language, require_role
from console.users import InvalidUser, UserExists, UserRow

if TYPE_CHECKING:
    from console.app import ConsoleContext

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["session"])
CurrentUser = Annotated[User, Depends(api_user)]

VERIFY_WAIT_S = 30.0
"""How long a log-in waits for a free password-check slot (``ConsoleContext.verify_slots``)
before it answers 503."""
_401 = {401: {"description": "not logged in"}}
_403 = {403: {"description": "not allowed, or a missing or wrong CSRF token"}}


def _msg(request: Request, zh: str, en: str) -> str:
    return zh if request_language(request) == "zh-CN" else en


def _me(user: User) -> dict[str, Any]:
    return {"username": user.username, "role": user.role, "enterprise": user.enterprise,
            "csrf": user.csrf, "language": user.language}


@router.get("/health", tags=["service"])
def health(request: Request) -> dict[str, bool]:
    """Readiness: ``"ok": true`` once the app serves requests; ``"live"``: whether the Kafka
    reader is following (false without one, or while it reconnects)."""
    reader = context(request).reader
    return {"ok": True, "live": reader is not None and reader.alive}


@router.get("/csrf")
def csrf(request: Request, response: Response) -> dict[str, str]:
    """A fresh double-submit token for the log-in, also set as cookie ``hw_csrf``."""
    token = secrets.token_urlsafe(32)
    response.set_cookie(auth.CSRF_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=auth.secure_cookies(request))
    return {"csrf": token}


def _authenticate(request: Request, ctx: ConsoleContext, body: LoginBody) -> UserRow | None:
    """The password check, at most ``auth.VERIFY_SLOTS`` at a time: each argon2 verification takes
    its memory cost (64 MiB), so a burst of log-ins must not add up to gigabytes."""
    if not ctx.verify_slots.acquire(timeout=VERIFY_WAIT_S):
        raise HTTPException(503, _msg(request, "登录请求过多，请稍后再试", "too many log-ins at once; try again"),
                            headers={"Retry-After": "1"})
    try:
        return ctx.users.authenticate(body.username, body.password)
    finally:
        ctx.verify_slots.release()


@router.post("/login", response_model=Me, responses={
    401: {"description": "wrong user name or password"},
    403: {"description": "missing or wrong CSRF token (cookie hw_csrf and header X-CSRF-Token)"},
    429: {"description": "too many failed log-ins; see Retry-After"},
    503: {"description": "too many log-ins at once; see Retry-After"}})
def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    ctx = context(request)
    if not auth.check_csrf(request, request.cookies.get(auth.CSRF_COOKIE)):
        raise HTTPException(403, _msg(request, "CSRF 令牌缺失或错误，请刷新登录页",
                                      "missing or wrong CSRF token; reload the log-in page"))
    client = request.client.host if request.client else ""
    keys = [f"user:{body.username.strip().lower()}", f"addr:{client}"]
    now = ctx.now()
    # Check the limit and count this attempt as a failure in one locked step, before the
    # password check: concurrent guesses cannot all pass the check first. Success takes it back.
    with ctx.limiter_lock:
        wait = ctx.limiter.attempt(keys, now.timestamp())
    if wait is not None:
        raise HTTPException(429, _msg(request, "登录失败次数过多，请稍后再试",
                                      "too many failed log-ins; try again later"),
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
    try:
        row = _authenticate(request, ctx, body)
    except BaseException:
        with ctx.limiter_lock:
            ctx.limiter.release(keys, now.timestamp())
        raise
    if row is None:
        ctx.users.record_failure(body.username, client, now)
        raise HTTPException(401, _msg(request, "用户名或密码错误", "wrong user name or password"))
    with ctx.limiter_lock:
        ctx.limiter.release(keys, now.timestamp())
        ctx.limiter.succeeded(keys[0])
    token, info = ctx.users.open_session(row, hours=ctx.settings.session_hours, client=client, now=now)
    response.set_cookie(auth.SESSION_COOKIE, token, max_age=int(ctx.settings.session_hours * 3600),
                        httponly=True, samesite="strict", path="/", secure=auth.secure_cookies(request))
    response.delete_cookie(auth.CSRF_COOKIE, path="/")
    user = User(info.username, info.role, info.enterprise,
                request_language(request, info.language), info.csrf)
    return _me(user)


@router.post("/logout", responses={**_401, **_403})
def logout(request: Request, response: Response, user: CurrentUser) -> dict[str, Any]:
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token:
        context(request).users.close_session(token, context(request).now())
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return {}


@router.get("/me", response_model=Me, responses=_401)
def me(user: CurrentUser) -> dict[str, Any]:
    return _me(user)


def _user_view(row: UserRow) -> dict[str, Any]:
    return {"username": row.username, "role": row.role, "enterprise": row.enterprise,
            "language": row.language, "disabled": row.disabled, "created_at": iso(row.created_at),
            "created_by": row.created_by}


@router.get("/users", response_model=list[UserView], tags=["users"], responses={**_401, **_403})
def list_users(request: Request, user: CurrentUser) -> list[dict[str, Any]]:
    require_role(user, "admin")
    return [_user_view(r) for r in context(request).users.list()]


@router.post("/users", response_model=UserView, status_code=201, tags=["users"],
             responses={**_401, **_403, 409: {"description": "the user name is taken"},
                        422: {"description": "bad name, role, enterprise or password"}})
def add_user(body: UserBody, request: Request, user: CurrentUser) -> dict[str, Any]:
    require_role(user, "admin")
    ctx = context(request)
    enterprises = {s.enterprise for s in ctx.config.sites}
    if body.role == "officer" and body.enterprise not in enterprises:
        raise HTTPException(422, _msg(request, "安全员需要配置中存在的企业",
                                      f"an officer needs one of the configured enterprises: "
                                      f"{', '.join(sorted(enterprises))}"))
    try:
        row = ctx.users.add(body.username, body.password, body.role,
                            enterprise=body.enterprise if body.role == "officer" else None,
                            language=body.language, by=user.username, now=ctx.now())
    except UserExists as exc:
        raise HTTPException(409, str(exc)) from None
    except InvalidUser as exc:
        raise HTTPException(422, str(exc)) from None
    return _user_view(row)
