"""What the stages share: the store, the configuration in force, this process's claims, the
channels and the clock. One instance per dispatcher; a reload replaces its ``config`` and
``channels`` (:meth:`alerts.dispatch.Dispatcher.reconfigure`), which every stage sees at once.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerts.channel_alarm import FALLBACK, ChannelAlarms
from alerts.channels.base import Channel
from alerts.channels.sms import SmsChannel
from alerts.channels.sms_twilio import TwilioSms
from alerts.claims import Claims
from alerts.store import Store
from config.models import Config

__all__ = ["TWILIO", "Deps"]

TWILIO = ("sms", FALLBACK)
"""The outbox channels that go through the given Twilio ``SmsChannel`` (the second account's
``sms-fallback`` through its own): free text, no templates."""


@dataclass
class Deps:
    store: Store
    config: Config
    claims: Claims
    alarms: ChannelAlarms
    clock: Callable[[], dt.datetime]
    rng: random.Random
    sms: SmsChannel
    on_result: Callable[[dict[str, Any]], None] = lambda _r: None
    fallback: SmsChannel | None = None
    channels: dict[str, Channel] = field(default_factory=dict)
    status_callback: str | None = None
    publish_cap: Callable[[str, bytes], None] = lambda _zone, _xml: None
    publish_audio: Callable[[str, bytes], None] | None = None
    audio_dir: Path | None = None

    def channel(self, outbox_channel: str) -> Channel:
        """The channel rows of ``outbox_channel`` go out on."""
        if outbox_channel in TWILIO:
            sms = self.fallback if outbox_channel == FALLBACK and self.fallback is not None else self.sms
            return TwilioSms(sms, self.status_callback)
        if outbox_channel not in self.channels:
            raise RuntimeError(f"channel {outbox_channel!r} was not built: the service builds the channels "
                               "its routing rules name (alerts.channels.registry.build_routed)")
        return self.channels[outbox_channel]
