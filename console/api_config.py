"""API: the loaded configuration, read-only, for admins (``GET /api/config``).

What the console runs on (loaded at its start) with every secret redacted -- ``SecretStr``
fields, passwords in URLs, fields named like a password, token or secret -- and phone numbers
masked but for their last 4 digits; plus the result of validating the configuration directory
*now*, as ``hazwatch check-config`` does, so an admin sees whether the files on disk still load.
Editing stays in the files (docs/CONFIGURATION.md).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, SecretBytes, SecretStr

from config.checks import config_warnings
from config.loader import ConfigError, load_config
from config.models import Config
from console.auth import User, api_user, context, require_role

__all__ = ["REDACTED", "ConfigView", "ReloadOutcome", "ReloadView", "check_directory", "config_view", "mask_phone",
           "redact", "router"]

router = APIRouter(prefix="/api", tags=["configuration"])
CurrentUser = Annotated[User, Depends(api_user)]

REDACTED = "***"
#: Plain-text fields whose name says they hold a secret are redacted too (defence in depth).
_SECRET_NAME = re.compile(r"password|passwd|secret|token|api_?key|private_?key", re.IGNORECASE)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConfigIssueView(_Out):
    file: str
    path: str
    reason: str


class ConfigCheck(_Out):
    valid: bool
    issues: list[ConfigIssueView] = []
    warnings: list[ConfigIssueView] = []
    """What ``hazwatch check-config`` warns of (config/checks.py): not errors, but worth a look."""


class RuleCounts(_Out):
    threshold: int
    rate: int
    rain: int
    trend: int
    site: int


class ConfigCounts(_Out):
    sites: int
    sensors: int
    rules: RuleCounts
    maintenance: int
    zones: int
    subscribers: int
    recipients: int


class ZoneView(_Out):
    id: str
    name: str
    name_en: str | None
    region: str
    area: Literal["circle", "polygon"]
    circle: dict[str, float] | None
    polygon_vertices: int | None
    subscribers: int


class RecipientView(_Out):
    name: str
    phone: str
    role: str
    enterprise: str | None
    tier: str | None
    region: str | None
    language: str


class ConfigView(_Out):
    directory: str | None
    fingerprint: str
    check: ConfigCheck | None
    counts: ConfigCounts
    settings: dict[str, Any]
    sites: list[dict[str, Any]]
    zones: list[ZoneView]
    recipients: list[RecipientView]


def hide_url_password(text: str) -> str:
    """``scheme://user:***@host/...`` for a URL with a password; anything else unchanged."""
    if "://" not in text or "@" not in text:
        return text
    try:
        parts = urlsplit(text)
        password = parts.password
    except ValueError:
        return REDACTED  # unparsable, and it has an @: do not risk showing it
    if password is None:
        return text
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}"))


def redact(value: Any, dumped: Any, name: str = "") -> Any:
    """``dumped`` (``value.model_dump(mode="json")``, or a part of it) with the secrets of
    ``value`` replaced by :data:`REDACTED`: the model is walked beside its dump, so a secret is
    known by its type, not by how it happens to serialise."""
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, BaseModel) and isinstance(dumped, dict):
        return {k: redact(getattr(value, k, None), v, k) for k, v in dumped.items()}
    if isinstance(value, dict) and isinstance(dumped, dict):
        return {dk: redact(v, dv, str(dk)) for (_, v), (dk, dv) in zip(value.items(), dumped.items(), strict=True)}
    if isinstance(value, list | tuple) and isinstance(dumped, list):
        return [redact(v, dv, name) for v, dv in zip(value, dumped, strict=True)]
    if isinstance(dumped, str):
        return REDACTED if dumped and _SECRET_NAME.search(name) else hide_url_password(dumped)
    return dumped


def mask_phone(phone: str) -> str:
    """All but the last 4 characters as ``*``: ``**********0001``."""
    return "*" * max(0, len(phone) - 4) + phone[-4:]


def check_directory(directory: Path) -> dict[str, Any]:
    """What ``hazwatch check-config DIRECTORY`` would say now: ``{"valid": true, "issues": [],
    "warnings": [...]}`` or ``{"valid": false, "issues": [{"file", "path", "reason"}, ...]}``."""
    try:
        loaded = load_config(directory)
    except ConfigError as exc:
        return {"valid": False, "issues": [{"file": i.file, "path": i.path, "reason": i.reason} for i in exc.issues]}
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # unreadable file, bad encoding
        return {"valid": False, "issues": [{"file": str(getattr(exc, "filename", "") or ""), "path": "",
                                            "reason": f"{exc.__class__.__name__}: {exc}"}]}
    return {"valid": True, "issues": [], "warnings": [{"file": i.file, "path": i.path, "reason": i.reason}
                                                     for i in config_warnings(loaded)]}


def _counts(config: Config) -> dict[str, Any]:
    sensors = [x for s in config.sites for x in s.sensors]
    return {
        "sites": len(config.sites),
        "sensors": len(sensors),
        "rules": {"threshold": sum(len(x.thresholds) for x in sensors),
                  "rate": sum(len(x.rate) for x in sensors),
                  "rain": sum(x.rain is not None for x in sensors),
                  "trend": sum(x.trend is not None for x in sensors),
                  "site": sum(len(s.site_rules) for s in config.sites)},
        "maintenance": sum(len(s.maintenance) for s in config.sites),
        "zones": len(config.zones),
        "subscribers": sum(len(z.subscribers) for z in config.zones),
        "recipients": len(config.recipients),
    }


def config_view(config: Config, directory: Path | None) -> dict[str, Any]:
    settings = config.settings
    zones = [{"id": z.id, "name": z.name, "name_en": z.name_en, "region": z.region,
              "area": "circle" if z.circle is not None else "polygon",
              "circle": z.circle.model_dump(mode="json") if z.circle is not None else None,
              "polygon_vertices": len(z.polygon.coordinates[0]) - 1 if z.polygon is not None else None,
              "subscribers": len(z.subscribers)} for z in config.zones]
    recipients = [{"name": r.name, "phone": mask_phone(r.phone), "role": r.role, "enterprise": r.enterprise,
                   "tier": r.tier, "region": r.region, "language": r.language} for r in config.recipients]
    sites = [redact(s, s.model_dump(mode="json")) for s in config.sites]
    return {
        "directory": None if directory is None else str(directory),
        "fingerprint": config.sensor_fingerprint,
        "check": None if directory is None else check_directory(directory),
        "counts": _counts(config),
        "settings": redact(settings, settings.model_dump(mode="json")),
        "sites": sites,
        "zones": zones,
        "recipients": recipients,
    }


@router.get("/config", response_model=ConfigView, responses={
    401: {"description": "not logged in"}, 403: {"description": "not an admin"}})
def get_config(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The configuration the console runs on (loaded at its start; secrets redacted, phone
    numbers masked) and ``check``: its directory validated again now (null when unknown)."""
    require_role(user, "admin")
    ctx = context(request)
    return config_view(ctx.config, ctx.config_dir)


class ReloadView(_Out):
    applied: bool
    changes: list[str]
    issues: list[ConfigIssueView]
    request: str | None


class ReloadOutcome(_Out):
    request: str | None
    service: str
    instance: str
    result: str
    detail: str
    at: int


@router.post("/config/reload", response_model=ReloadView, responses={
    401: {"description": "not logged in"}, 403: {"description": "not an admin"},
    409: {"description": "refused: the directory does not validate, or a change needs a restart; nothing changed"},
    503: {"description": "Kafka did not acknowledge the request: the console did not change"}})
def reload_config(request: Request, user: CurrentUser) -> Any:
    """Read the configuration directory again and put it in force in every service (console/reload.py):
    validated first; refused with every reason, and nothing changed, when it does not validate.
    Recorded in the audit log with what changed. Each service's outcome follows in
    ``GET /api/config/reloads``."""
    from fastapi.responses import JSONResponse

    from console.reload import reload_everywhere

    require_role(user, "admin")
    ctx = context(request)
    try:
        outcome = reload_everywhere(ctx, user.username)
    except Exception as exc:  # noqa: BLE001 - Kafka did not take the request: nothing changed
        return JSONResponse({"detail": f"Kafka did not acknowledge the reload request ({exc.__class__.__name__}: "
                             f"{exc}): the console did not change; some services may have received it "
                             "(GET /api/config/reloads lists their answers)"}, status_code=503)
    body = {"applied": outcome.applied, "changes": outcome.changes, "issues": outcome.issues,
            "request": outcome.request}
    return body if outcome.applied else JSONResponse(body, status_code=409)


@router.get("/config/reloads", response_model=list[ReloadOutcome], responses={
    401: {"description": "not logged in"}, 403: {"description": "not an admin"}})
def reload_outcomes(request: Request, user: CurrentUser) -> list[dict[str, Any]]:
    """The services' answers to reloads since the console started, newest first: each service
    instance's ``applied`` or ``refused``, with what changed or why not."""
    require_role(user, "admin")
    return [{k: o.get(k) for k in ("request", "service", "instance", "result", "detail", "at")}
            for o in list(context(request).outcomes)]  # a copy: the listener thread appends
