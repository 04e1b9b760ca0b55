"""Dispatch: send what the outbox holds, one claimed row at a time, through the notify pipeline
(:func:`alerts.notify.builder.build`: group -> rate-limit -> render -> send -> retry -> record).

A row (or a group of rows) is marked ``sending`` in its own committed transaction before the
provider is called. After a crash such rows are ``unknown``: they are reconciled with the
provider's record of sent messages (the channel's ``find_sent``) and only sent when the provider
has no such message, so a crash or a timeout never causes a second SMS. A channel whose provider
keeps no such record (``can_look_up`` false: the group robots) sends an unknown row again: at
least once. Only the retry stage (:mod:`alerts.notify.retry`) decides when to try again.

Every send goes through the channel protocol (``alerts.channels.base``): outbox channel ``sms``
(and the second account's ``sms-fallback``) is Twilio, through ``TwilioSms`` around the given
``SmsChannel``; any other is looked up in ``channels`` (built from the registry by the service).

Several processes may dispatch from one database: each works only on the rows it has claimed
(:mod:`alerts.claims`), and a process that dies mid-send leaves ``sending`` rows whose lease runs
out; whichever process comes next turns them ``unknown`` and reconciles them as above.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from alerts.channel_alarm import ChannelAlarms
from alerts.channels.base import Channel
from alerts.channels.sms import SmsChannel
from alerts.claims import WAITING, Claims, lease_s, owner_id
from alerts.notify.builder import build
from alerts.notify.deps import Deps
from alerts.notify.retry import after_error, backoff_s
from alerts.notify.stage import Ctx
from alerts.store import Notification, Store
from config.models import Config

__all__ = ["Dispatcher", "backoff_s"]

log = logging.getLogger("hazwatch.alerts")
PASS_LIMIT = 500  # rows looked at per pass, so that intake and timers are not starved


class Dispatcher:
    def __init__(self, store: Store, config: Config, sms: SmsChannel, *, publish_cap: Callable[[str, bytes], None],
                 clock: Callable[[], dt.datetime], on_result: Callable[[dict[str, Any]], None] = lambda _r: None,
                 status_callback: str | None = None, rng: random.Random | None = None,
                 audio_dir: Path | None = None,
                 publish_audio: Callable[[str, bytes], None] | None = None, claims: Claims | None = None,
                 fallback: SmsChannel | None = None, channels: Mapping[str, Channel] | None = None) -> None:
        self.claims = claims or Claims(store, owner_id(), lease_s(config.settings.notify.sms_timeout_s))
        self.deps = Deps(store=store, config=config, claims=self.claims, alarms=ChannelAlarms(store, config, clock),
                         clock=clock, rng=rng or random.Random(), sms=sms, on_result=on_result, fallback=fallback,
                         channels=dict(channels or {}), status_callback=status_callback, publish_cap=publish_cap,
                         publish_audio=publish_audio, audio_dir=audio_dir)
        self.pipeline = build(self.deps)

    @property
    def store(self) -> Store:
        return self.deps.store

    @property
    def config(self) -> Config:
        return self.deps.config

    def reconfigure(self, config: Config, channels: Mapping[str, Channel]) -> None:
        """Put a reloaded configuration in force from the next pass (alerts/service.py)."""
        self.deps.config, self.deps.channels = config, dict(channels)
        self.deps.alarms.config, self.deps.alarms.settings = config, config.settings.notify.channel_alarm

    def recover(self) -> int:
        """After a crash: rows left ``sending`` may or may not have gone out -> reconcile them,
        once their lease has run out (another process may still be sending them)."""
        return self.claims.expire(self.deps.clock())

    def run_once(self) -> int:
        clock = self.deps.clock
        now = clock()
        if self.recover():  # sends of a process that died are reconciled once its lease ran out
            log.warning("alerts: sends left unfinished by a stopped process are reconciled with the provider")
        self.deps.alarms.check()  # a channel failing for after_min minutes, whatever its attempt count
        done: set[str] = set()
        sent = after = 0
        for _ in range(PASS_LIMIT):
            # one row at a time: a process holds only what it is sending, so one that hangs or
            # dies keeps nothing else waiting, and other processes share a backlog
            due = self.claims.claim_due(clock(), after=after, limit=1)
            if not due:
                break
            row, after = due[0], due[0].id
            try:
                if row.group_key not in done:
                    done.add(row.group_key)
                    sent += self._dispatch(row, now)
            finally:
                self.claims.release()
        return sent

    def _dispatch(self, row: Notification, now: dt.datetime) -> int:
        try:
            self.pipeline.exec(Ctx(now=now, claimed=row), [row])
            return 1
        except Exception as exc:  # noqa: BLE001 - keep the rows, try again later
            log.exception("dispatch of %s failed", row.key)
            retry = after_error(row.attempts, now, self.deps.rng)
            # what may have gone out is reconciled before it is sent again, never resent blind
            self.claims.write(None, only=("sending",), status="unknown", error=repr(exc), not_before=retry)
            self.claims.write([row.id], only=WAITING, error=repr(exc), not_before=retry)
            return 0
