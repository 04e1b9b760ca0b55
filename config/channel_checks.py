"""Errors of a routed channel: a routing rule (or ``notify.escalation.channels``) names a channel
whose settings are missing or incomplete.

The configuration loads without them (the rules worker and the console need no SMS account, and
docker-compose gives the channels' secrets to the alerts container only), but the alerts service
cannot send: ``hazwatch check-config`` reports them as errors (exit 2), and the alerts service
stops with the same words when it builds its channels (``alerts.channels.registry.build_routed``).
What a channel needs comes from its line in ``config.channel_registry`` (``section``,
``required``); the variables that can supply a missing secret from ``config.channels.channel_env``.

- the channel's section under ``notify.channels`` is missing (``routing.rules[i].channels[j]``);
- a key it ``required`` is set neither in the file nor by its variable (e.g.
  ``notify.channels.sms_aliyun.access_key_secret``, ``…dingtalk_robot.robots[0].access_token``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from config.channel_registry import ChannelSpec, spec
from config.channels import ChannelsSettings, channel_env
from config.errors import annotation_at
from config.loader import ConfigIssue

__all__ = ["channel_errors"]

_FILE = "hazwatch.yaml"


def _name(s: ChannelSpec) -> str:
    zh, en = s.label
    return f"{s.name} ({en}, {zh})" if zh and en else s.name


_ESCALATION = "the 叫应 steps (notify.escalation.channels)"


def _rules(users: list[str]) -> str:
    """``routing rules 'a', 'b'``, ``the 叫应 steps (…)``, or both."""
    rules = [u for u in users if u != _ESCALATION]
    out = [f"routing rule{'s' if len(rules) > 1 else ''} {', '.join(rules)}"] if rules else []
    return " and ".join(out + [u for u in users if u == _ESCALATION])


def _what_to_add(section: str) -> str:
    model = annotation_at(ChannelsSettings, (section,))
    if isinstance(model, type) and issubclass(model, BaseModel):
        keys = [k for k, f in model.model_fields.items() if f.is_required()]
        if keys:
            return f" with at least {', '.join(keys)}"
    return ""


def _missing(key: str, var: str | None) -> str:
    where = f"set {var} (or {var}_FILE) where the alerts service runs, or write {key} in hazwatch.yaml" if var \
        else f"write {key} in hazwatch.yaml"
    return f"has no {key}: {where}"


def _incomplete(s: ChannelSpec, section: dict[str, Any], env_of: dict[tuple[Any, ...], str],
                routed_by: str) -> list[ConfigIssue]:
    base = ("notify", "channels", s.section)
    out: list[ConfigIssue] = []
    for key in s.required:
        if key.startswith("robots[]."):
            key = key.removeprefix("robots[].")
            for k, robot in enumerate(section.get("robots") or []):
                if robot.get(key) is None:
                    var = env_of.get((*base, "robots", k, key))
                    out.append(ConfigIssue(_FILE, f"notify.channels.{s.section}.robots[{k}].{key}",
                                           f"{_name(s)} is used by {routed_by}, but its robot "
                                           f"'{robot.get('id')}' {_missing(key, var)}"))
        elif section.get(key) is None:
            out.append(ConfigIssue(_FILE, f"notify.channels.{s.section}.{key}",
                                   f"{_name(s)} is used by {routed_by}, but it "
                                   f"{_missing(key, env_of.get((*base, key)))}"))
    return out


def channel_errors(settings: Any) -> list[ConfigIssue]:
    """The errors of every channel the routing rules and the 叫应 steps of ``settings``
    (``config.models.Settings``, its environment applied by the loader) name, in the order they
    name them."""
    # (where it is named, who uses it, the channel): the routing rules, then the 叫应 steps
    named = [(f"routing.rules[{i}].channels[{j}]", f"'{rule.name}'", channel)
             for i, rule in enumerate(settings.routing.rules) for j, channel in enumerate(rule.channels)]
    named += [(f"notify.escalation.channels[{j}]", _ESCALATION, channel)
              for j, channel in enumerate(settings.notify.escalation.channels)]
    first: dict[str, str] = {}
    users: dict[str, list[str]] = {}
    for path, user, channel in named:
        s = spec(channel)
        if s.section is None:
            continue
        first.setdefault(s.name, path)
        users.setdefault(s.name, [])
        if user not in users[s.name]:
            users[s.name].append(user)
    dumped = settings.notify.channels.model_dump(mode="python")
    env_of = {tuple(path): var for var, path in channel_env({"notify": {"channels": dumped}})}
    out: list[ConfigIssue] = []
    for name, path in first.items():
        s, routed_by = spec(name), _rules(users[name])
        section = dumped.get(s.section) if s.section else None
        if section is None:
            out.append(ConfigIssue(_FILE, path,
                                   f"{_name(s)} is used by {routed_by}, but notify.channels.{s.section} "
                                   f"is not configured: add it{_what_to_add(str(s.section))} "
                                   "(docs/CONFIGURATION.md, \"Channels\")"))
        else:
            out += _incomplete(s, section, env_of, routed_by)
    return out
