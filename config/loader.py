"""Load a configuration directory and report every problem with file, path and reason.

Errors::

    ConfigError                 one or more ConfigIssue, all of them, never only the first
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from config.notify import region_prefix
from config.models import (
    Config,
    RecipientsFile,
    Settings,
    SitesFile,
    ZonesFile,
)

__all__ = [
    "ENV_OVERRIDES",
    "ConfigError",
    "ConfigIssue",
    "example_dir",
    "load_config",
]

FILES: dict[str, type[BaseModel]] = {
    "hazwatch.yaml": Settings,
    "sites.yaml": SitesFile,
    "zones.yaml": ZonesFile,
    "recipients.yaml": RecipientsFile,
}

#: Environment variables that override a setting (docker-compose and the embedded stack use them).
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "HAZWATCH_MQTT_URL": ("mqtt", "url"),
    "HAZWATCH_KAFKA_BOOTSTRAP": ("kafka", "bootstrap"),
    "HAZWATCH_KAFKA_REPLICATION_FACTOR": ("kafka", "replication_factor"),
    "HAZWATCH_KAFKA_MIN_INSYNC_REPLICAS": ("kafka", "min_insync_replicas"),
    "HAZWATCH_DATABASE_URL": ("database", "url"),
    "HAZWATCH_TWILIO_BASE_URL": ("sms", "base_url"),
    "TWILIO_ACCOUNT_SID": ("sms", "account_sid"),
    "TWILIO_AUTH_TOKEN": ("sms", "auth_token"),
    "HAZWATCH_ALERTS_HTTP_PORT": ("notify", "http", "port"),
    "HAZWATCH_ALERTS_PUBLIC_URL": ("notify", "http", "public_url"),
}


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path or '<root>'}: {self.reason}"


class ConfigError(Exception):
    def __init__(self, directory: Path, issues: list[ConfigIssue]) -> None:
        self.directory = directory
        self.issues = issues
        lines = "\n".join(f"  {i}" for i in issues)
        super().__init__(f"invalid configuration in {directory} ({len(issues)} error(s)):\n{lines}")


def example_dir() -> Path:
    """The example configuration shipped in the ``config`` package."""
    return Path(str(resources.files("config").joinpath("example")))


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _read(directory: Path, name: str, issues: list[ConfigIssue]) -> Any:
    path = directory / name
    if not path.exists():
        if name in ("zones.yaml", "recipients.yaml"):
            return {}
        issues.append(ConfigIssue(name, "", "file is missing"))
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        issues.append(ConfigIssue(name, where, f"not valid YAML: {getattr(exc, 'problem', exc)}"))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        issues.append(ConfigIssue(name, "", f"must be a mapping, got {type(data).__name__}"))
        return None
    return data


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, path in ENV_OVERRIDES.items():
        if not env.get(var):
            continue
        node = data
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = env[var]


def _cross_check(parsed: dict[str, Any]) -> list[ConfigIssue]:
    """Checks that span files: unique ids, site -> zone, officer -> enterprise, regulator -> region."""
    issues: list[ConfigIssue] = []
    sites: SitesFile = parsed["sites.yaml"]
    zones: ZonesFile = parsed["zones.yaml"]
    recipients: RecipientsFile = parsed["recipients.yaml"]
    zone_ids = {z.id for z in zones.zones}
    enterprises = {s.enterprise for s in sites.sites}

    seen: dict[str, int] = {}
    for i, site in enumerate(sites.sites):
        if site.id in seen:
            issues.append(ConfigIssue("sites.yaml", f"sites[{i}].id", f"duplicate site id {site.id!r} (also sites[{seen[site.id]}])"))
        seen[site.id] = i
        if site.zone not in zone_ids:
            issues.append(ConfigIssue("sites.yaml", f"sites[{i}].zone", f"unknown zone {site.zone!r} (zones.yaml defines {sorted(zone_ids)})"))
        for k, extra in enumerate(site.extra_zones):
            if extra not in zone_ids:
                issues.append(ConfigIssue("sites.yaml", f"sites[{i}].extra_zones[{k}]", f"unknown zone {extra!r} (zones.yaml defines {sorted(zone_ids)})"))
        sensor_seen: set[str] = set()
        for j, sensor in enumerate(site.sensors):
            if sensor.id in sensor_seen:
                issues.append(ConfigIssue("sites.yaml", f"sites[{i}].sensors[{j}].id", f"duplicate sensor id {sensor.id!r} in site {site.id}"))
            sensor_seen.add(sensor.id)
            if sensor.trend is not None and not sensor.thresholds:
                issues.append(ConfigIssue("sites.yaml", f"sites[{i}].sensors[{j}].trend",
                                          "a trend rule forecasts the next rung of the sensor's threshold "
                                          "rule: add a threshold rule"))
    zseen: set[str] = set()
    for i, zone in enumerate(zones.zones):
        if zone.id in zseen:
            issues.append(ConfigIssue("zones.yaml", f"zones[{i}].id", f"duplicate zone id {zone.id!r}"))
        zseen.add(zone.id)
    regions = {s.region for s in sites.sites}
    for i, r in enumerate(recipients.recipients):
        if r.role == "regulator" and r.tier and r.region and not any(
            reg.startswith(region_prefix(r.region, r.tier)) for reg in regions
        ):
            issues.append(ConfigIssue("recipients.yaml", f"recipients[{i}].region",
                                      f"no site lies in {r.tier} {r.region} (sites.yaml regions: {sorted(regions)})"))
        if r.role == "officer" and r.enterprise not in enterprises:
            issues.append(ConfigIssue("recipients.yaml", f"recipients[{i}].enterprise", f"no site belongs to enterprise {r.enterprise!r}"))
    return issues


def load_config(directory: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate ``directory``; raise :class:`ConfigError` listing every issue.

    ``env`` (default: the process environment) may override broker addresses and secrets,
    see :data:`ENV_OVERRIDES`.
    """
    directory = Path(directory)
    env = os.environ if env is None else env
    issues: list[ConfigIssue] = []
    if not directory.is_dir():
        # Absolute, so that `check-config` (which prints DIR / FILE) names it once, not DIR/DIR.
        raise ConfigError(directory, [ConfigIssue(str(directory.absolute()), "", "not a directory")])
    parsed: dict[str, Any] = {}
    for name, model in FILES.items():
        data = _read(directory, name, issues)
        if data is None:
            continue
        if name == "hazwatch.yaml":
            _apply_env(data, env)
        try:
            parsed[name] = model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                issues.append(ConfigIssue(name, _path(err["loc"]), err["msg"]))
    if len(parsed) == len(FILES):
        issues.extend(_cross_check(parsed))
    if issues:
        raise ConfigError(directory, issues)
    return Config(
        settings=parsed["hazwatch.yaml"],
        sites=parsed["sites.yaml"].sites,
        zones=parsed["zones.yaml"].zones,
        recipients=parsed["recipients.yaml"].recipients,
    )
