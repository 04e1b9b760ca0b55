"""Reading docker-compose.yml (and its single-node override) the way Compose does, without Docker.

The files are read with PyYAML (anchors and ``<<`` merges included); an override is merged into
the base as Compose merges services (mappings key by key, anything else replaced), which is all the
single-node file uses; ``${VAR}`` interpolation follows Compose's rules. tests/deploy/
test_compose_config.py checks that Debian's docker-compose resolves both layouts to the same
environments as this module does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COMPOSE_FILE", "DOCKERFILE", "ENV_EXAMPLE", "LAYOUTS", "MOSQUITTO_DIR", "ROOT", "SECRET_NAME",
    "SINGLE_FILE", "VAR_REF", "Services", "active", "dotenv", "env_of", "hazwatch_services",
    "host_path", "interpolate", "layout", "listeners", "long_running", "merge", "variables",
    "volumes_of",
]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SINGLE_FILE = ROOT / "docker-compose.single.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
MOSQUITTO_DIR = ROOT / "deploy" / "mosquitto"

#: The two documented layouts: the compose files given, in order.
LAYOUTS = {"three-nodes": (COMPOSE_FILE,), "single": (COMPOSE_FILE, SINGLE_FILE)}

Services = dict[str, dict[str, Any]]

SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|_SID$|_KEY$")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
VAR_REF = re.compile(rf"\$\$|\$\{{({_NAME})(?:(:?[-?+])([^}}]*))?\}}|\$({_NAME})")


def merge(base: Any, override: Any) -> Any:
    """Compose's merge of an override into a service definition, for mappings and scalars."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = merge(base[key], value) if key in base else value
        return out
    return override


def layout(name: str) -> dict[str, Any]:
    """The compose files of layout ``name`` read and merged (not interpolated)."""
    merged: dict[str, Any] = {}
    for path in LAYOUTS[name]:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert isinstance(data, dict) and isinstance(data.get("services"), dict), path
        merged = merge(merged, data)
    return merged


def active(services: Services) -> Services:
    """The services `up` starts: those in no profile (no profile is ever activated)."""
    return {n: s for n, s in services.items() if not s.get("profiles")}


def dotenv(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file (no quoting: .env.example uses none)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            out[key.strip()] = value.strip()
    return out


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}`, `$$` rules (enough for these files)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1) or m.group(4), m.group(2), m.group(3) or ""
        val = env.get(name)
        missing = not val if op and op.startswith(":") else val is None
        if op in (":-", "-"):
            return arg if missing else str(val)
        if op in (":?", "?"):
            if missing:
                raise KeyError(f"{name}: {arg}")
            return str(val)
        if op in (":+", "+"):
            return "" if missing else arg
        return val or ""

    return VAR_REF.sub(sub, value)


def variables(text: str) -> set[str]:
    return {m.group(1) or m.group(4) for m in VAR_REF.finditer(text) if m.group(0) != "$$"}


def env_of(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def volumes_of(service: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(source, target, long-syntax options) of each mount."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, str):
            parts = v.split(":")
            out.append((parts[0], parts[1], {"read_only": parts[2:] == ["ro"]}))
        else:
            out.append((str(v["source"]), str(v["target"]), v))
    return out


def host_path(service: Mapping[str, Any], container_path: str) -> str | None:
    """The host path (``./...`` or a volume name plus the rest) a container path is mounted from,
    through the mount with the longest target that contains it; None: not mounted."""
    best: tuple[str, str] | None = None
    for source, target, _ in volumes_of(service):
        target = target.rstrip("/")
        if (container_path == target or container_path.startswith(target + "/")) and (
                best is None or len(target) > len(best[1])):
            best = (source, target)
    if best is None:
        return None
    rest = container_path[len(best[1]):]
    return best[0].rstrip("/") + rest


def hazwatch_services(services: Services) -> Services:
    """Services that run the image built from this repository's Dockerfile."""
    return {name: s for name, s in services.items()
            if "build" in s or str(s.get("image", "")).split(":")[0] == "hazwatch"}


def long_running(services: Services) -> Services:
    """The hazwatch services that keep running (not the one-shot kafka-init)."""
    return {n: s for n, s in hazwatch_services(services).items() if s.get("restart") != "no"}


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out
