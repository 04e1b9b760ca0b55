"""Load a configuration directory and report every problem with file, path and reason.

Errors::

    ConfigError                 one or more ConfigIssue, all of them, never only the first

Each file is validated by its model (pydantic's errors put in an operator's terms by
:mod:`config.errors`); the checks across files (:mod:`config.crossref`) run on what was read, so
they are reported together with the files' own errors. All four files are required.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from config.channels import channel_env
from config.crossref import cross_check
from config.env import EnvValueError, env_value
from config.errors import operator_reason
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

#: Environment variables that override a setting (docker-compose and the embedded stack use them);
#: a missing section is created. The channels' variables (``config.channels.channel_env``: the
#: Aliyun and Tencent accounts, the robots' keys) are applied with them, to configured sections
#: only. Each may also be given as ``<VARIABLE>_FILE``, the path of a file holding the value
#: (Docker secrets, ``config.env``). A value the model refuses is reported naming its variable.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "HAZWATCH_MQTT_URL": ("mqtt", "url"),
    "HAZWATCH_MQTT_USERNAME": ("mqtt", "username"),
    "HAZWATCH_MQTT_PASSWORD": ("mqtt", "password"),
    "HAZWATCH_MQTT_CA_FILE": ("mqtt", "ca_file"),
    "HAZWATCH_MQTT_CERT_FILE": ("mqtt", "cert_file"),
    "HAZWATCH_MQTT_KEY_FILE": ("mqtt", "key_file"),
    "HAZWATCH_KAFKA_BOOTSTRAP": ("kafka", "bootstrap"),
    "HAZWATCH_KAFKA_REPLICATION_FACTOR": ("kafka", "replication_factor"),
    "HAZWATCH_KAFKA_MIN_INSYNC_REPLICAS": ("kafka", "min_insync_replicas"),
    "HAZWATCH_KAFKA_IDEMPOTENCE": ("kafka", "idempotence"),
    "HAZWATCH_DATABASE_URL": ("database", "url"),
    "HAZWATCH_TWILIO_BASE_URL": ("sms", "base_url"),
    "TWILIO_ACCOUNT_SID": ("sms", "account_sid"),
    "TWILIO_AUTH_TOKEN": ("sms", "auth_token"),
    "HAZWATCH_ALERTS_HTTP_HOST": ("notify", "http", "host"),
    "HAZWATCH_ALERTS_HTTP_PORT": ("notify", "http", "port"),
    "HAZWATCH_ALERTS_PUBLIC_URL": ("notify", "http", "public_url"),
    "HAZWATCH_HISTORY_URL": ("history", "url"),
    "HAZWATCH_HISTORY_TOKEN": ("history", "token"),
    "HAZWATCH_HISTORY_STORE": ("history", "store"),
}


#: Why a missing file matters, for the files whose absence would otherwise look harmless.
_MISSING = {
    "zones.yaml": ": every site names its zone there (write `zones: []` for a configuration without zones)",
    "recipients.yaml": ": nobody would be notified, no operator, officer or regulator (write `recipients: []` "
                       "to run without any)",
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


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(directory: Path, name: str, issues: list[ConfigIssue]) -> Any:
    path = directory / name
    if not path.exists():
        issues.append(ConfigIssue(name, "", f"file is missing{_MISSING.get(name, '')}"))
        return None
    text = path.read_text(encoding="utf-8")
    try:
        try:  # libyaml's parser when PyYAML has it: the same data, several times faster
            data = yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a safe loader
        except yaml.YAMLError:
            data = yaml.safe_load(text)  # the pure parser's message, the same on every install
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


def _set(data: dict[str, Any], path: tuple[str | int, ...], value: str) -> None:
    """``value`` at ``path`` of ``data``, its missing mappings created on the way."""
    node: Any = data
    for part, after in itertools.pairwise(path):
        want = list if isinstance(after, int) else dict  # an index: a robot list channel_env found
        if isinstance(part, str) and not isinstance(node.get(part), want):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def _apply_env(data: dict[str, Any], env: Mapping[str, str], issues: list[ConfigIssue]) -> dict[tuple[Any, ...], str]:
    """Apply :data:`ENV_OVERRIDES` and the channels' variables (``config.channels.channel_env``,
    for the sections the file configures) to ``data``; return which variable set which path."""
    sources: dict[tuple[Any, ...], str] = {}
    for var, path in [*ENV_OVERRIDES.items(), *channel_env(data)]:
        try:
            value = env_value(env, var)
        except EnvValueError as exc:
            issues.append(ConfigIssue(exc.file, exc.variable, exc.reason))
            continue
        if value is None:
            continue
        _set(data, path, value)
        sources[tuple(path)] = f"{var}_FILE" if env.get(f"{var}_FILE") else var
    return sources


def _from_env(reason: str, loc: tuple[Any, ...], sources: Mapping[tuple[Any, ...], str]) -> str:
    """``reason``, naming the variable when the value at ``loc`` (or above it) came from one."""
    for n in range(len(loc), 0, -1):
        var = sources.get(tuple(loc[:n]))
        if var is not None:
            return f"{reason} (from {var})"
    return reason


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
    raw: dict[str, dict[str, Any] | None] = {}
    for name, model in FILES.items():
        data = raw[name] = _read(directory, name, issues)
        if data is None:
            continue
        sources = _apply_env(data, env, issues) if name == "hazwatch.yaml" else {}
        try:
            parsed[name] = model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                reason = _from_env(operator_reason(model, err), tuple(err["loc"]), sources)
                issues.append(ConfigIssue(name, _path(err["loc"]), reason))
    # Cross-file checks run on what was read even when a file did not validate: every error at once.
    issues.extend(ConfigIssue(*issue) for issue in cross_check(raw))
    if issues:
        # File by file, in the order of FILES (issues naming another file, a secret's, first);
        # within a file its own errors, then the cross-file ones.
        order = list(FILES)
        issues.sort(key=lambda i: order.index(i.file) if i.file in order else -1)
        raise ConfigError(directory, issues)
    return Config(
        settings=parsed["hazwatch.yaml"],
        sites=parsed["sites.yaml"].sites,
        zones=parsed["zones.yaml"].zones,
        recipients=parsed["recipients.yaml"].recipients,
    )
