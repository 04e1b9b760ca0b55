"""The channel registry: channels built from the table in ``config.channel_registry`` (which the
configuration derives its channel names from); see there for how to add a channel.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from config.channel_checks import channel_errors
from config.channel_registry import ALIASES, CHANNEL_NAMES, REGISTRY, ChannelSpec, canonical, spec
from config.channels import ChannelConfigError

__all__ = ["ALIASES", "CHANNEL_NAMES", "REGISTRY", "ChannelSpec", "build", "build_routed", "canonical",
           "channel_class", "outbox_spec", "spec"]

_OUTBOX_ALIASES = {"sms-fallback": "sms-twilio"}  # the second Twilio account (alerts.channel_alarm)


def outbox_spec(channel: str) -> ChannelSpec:
    """The registry line of an outbox row's ``channel`` (``sms`` and ``sms-fallback`` are Twilio)."""
    return spec(_OUTBOX_ALIASES.get(channel, channel))


def channel_class(name: str) -> Any:
    """The implementation of ``name``, imported now."""
    module, _, cls = spec(name).target.partition(":")
    return getattr(importlib.import_module(module), cls)


def build(name: str, settings: Any, env: Mapping[str, str]) -> Any:
    """The channel ``name`` built from the whole ``config.models.Settings`` and the environment;
    raises ``config.channels.ChannelConfigError`` when what it needs is not configured."""
    return channel_class(name).from_settings(settings, env)


def build_routed(settings: Any, env: Mapping[str, str]) -> dict[str, Any]:
    """Every channel the routing rules and the 叫应 steps name, built, by its registry name; Twilio and CAP, which
    the alerts service builds itself, left out. Raises ``ChannelConfigError`` listing what is not
    configured (``config.channel_checks``, as ``hazwatch check-config`` says it), so that the
    service stops at start rather than at the first warning."""
    errors = channel_errors(settings)
    if errors:  # in check-config's words, every one at once
        raise ChannelConfigError("; ".join(f"{i.file}: {i.path}: {i.reason}" for i in errors))
    named = [*(c for rule in settings.routing.rules for c in rule.channels), *settings.notify.escalation.channels]
    names = {canonical(c) for c in named} - {"sms-twilio", "cap"}
    return {name: build(name, settings, env) for name in sorted(names)}
