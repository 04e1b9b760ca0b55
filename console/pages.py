"""The console's HTML pages: thin server-rendered shells that the scripts in ``console/static/``
fill from the JSON API and keep live from ``/api/events`` (docs/CONSOLE.md, "Pages").

The pages hold no data of their own: what a user may see is decided by the API, so an officer's
page can show nothing the API would not answer. Every page but ``/login`` redirects to ``/login``
without a session.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from console import auth
from console.i18n import LANGS, Translator, request_lang

__all__ = ["router", "safe_next"]

_HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(_HERE / "templates"))
router = APIRouter(include_in_schema=False)


#: (path, nav key): the navigation bar in page order. Users and configuration are added for admins.
NAV = [("/", "nav.map"), ("/warnings", "nav.warnings"), ("/notifications", "nav.notifications"),
       ("/quality", "nav.quality"), ("/indicators", "nav.indicators"), ("/silences", "nav.silences")]


def _user(request: Request) -> Any:
    # optional_user reads the session from the database: the handlers are plain functions, so
    # FastAPI runs them in its thread pool and the event loop never waits on the database.
    return auth.optional_user(request)


def _field(user: Any, name: str) -> Any:
    return user.get(name) if isinstance(user, dict) else getattr(user, name, None)


def _render(request: Request, template: str, *, user: Any = None, status_code: int = 200,
            **context: Any) -> HTMLResponse:
    # a logged-in user's language already follows ?lang and the cookie, else their own setting
    lang = (user is not None and _field(user, "language")) or request_lang(request)
    t = Translator(lang if lang in LANGS else request_lang(request))
    nav = list(NAV)
    if user is not None and _field(user, "role") == "admin":
        nav += [("/admin/users", "nav.users"), ("/admin/config", "nav.config")]
    return templates.TemplateResponse(request, template, status_code=status_code, context={
        "lang": t.lang, "langs": LANGS, "t": t, "strings": t.table, "nav": nav, "path": request.url.path,
        "user": None if user is None else {k: _field(user, k) for k in ("username", "role", "enterprise")},
        **context,
    })


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _page(request: Request, template: str, **context: Any) -> Response:
    user = _user(request)
    if user is None:
        return _to_login(request)
    return _render(request, template, user=user, **context)


#: A local path and query: no scheme, no host, no backslash or control character (browsers read
#: ``/\host`` and ``/<TAB>/host`` as another origin).
_LOCAL_PATH = re.compile(r"/[A-Za-z0-9/_\-.?=&%]*")


def safe_next(target: str) -> str:
    """``target`` when it is a path on this console, else ``/``: never redirect off-site after
    logging in."""
    if not _LOCAL_PATH.fullmatch(target) or target.startswith(("//", "/\\")):
        return "/"
    return target


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    next = safe_next(next)
    token = secrets.token_urlsafe(32)
    response = _render(request, "login.html", csrf=token, next=next)
    # the double-submit cookie of the log-in form (docs/CONSOLE.md, "Sessions, CSRF")
    response.set_cookie(auth.CSRF_COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=auth.secure_cookies(request))
    return response


@router.get("/", response_class=HTMLResponse)
def map_page(request: Request) -> Response:
    return _page(request, "map.html", page="map")


@router.get("/warnings", response_class=HTMLResponse)
def warnings_page(request: Request) -> Response:
    return _page(request, "warnings.html", page="warnings")


@router.get("/sites/{site_id}", response_class=HTMLResponse)
def site_page(request: Request, site_id: str) -> Response:
    # Whether the user may see the site is the API's answer (404 for another enterprise's site);
    # the page asks it, so the page cannot reveal more than the API does.
    return _page(request, "site.html", page="site", site_id=site_id)


@router.get("/notifications", response_class=HTMLResponse)
def notifications_page(request: Request) -> Response:
    return _page(request, "notifications.html", page="notifications")


@router.get("/quality", response_class=HTMLResponse)
def quality_page(request: Request) -> Response:
    return _page(request, "quality.html", page="quality")


@router.get("/indicators", response_class=HTMLResponse)
def indicators_page(request: Request) -> Response:
    """Public warning coverage and the enterprise safety index (``/api/indicators/*``)."""
    return _page(request, "indicators.html", page="indicators")


@router.get("/silences", response_class=HTMLResponse)
def silences_page(request: Request) -> Response:
    return _page(request, "silences.html", page="silences")


def _admin_page(request: Request, template: str, page: str) -> Response:
    user = _user(request)
    if user is None:
        return _to_login(request)
    if _field(user, "role") != "admin":
        return _render(request, "forbidden.html", user=user, status_code=403, page="forbidden")
    return _render(request, template, user=user, page=page)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    return _admin_page(request, "users.html", "users")


@router.get("/admin/config", response_class=HTMLResponse)
def config_page(request: Request) -> Response:
    """The loaded configuration, read-only (admins): ``GET /api/config``."""
    return _admin_page(request, "config.html", "config")
