"""Dispatch: send what the outbox holds -- group -> rate-limit -> send -> record.

A row (or a group of rows) is marked ``sending`` in its own committed transaction before the
provider is called. After a crash such rows are ``unknown``: they are reconciled with the
provider's record of sent messages (the channel's ``find_sent``) and only sent when the provider
has no such message, so a crash or a timeout never causes a second SMS. A channel whose provider
keeps no such record (``can_look_up`` false: the group robots) sends an unknown row again: at
least once. Only this module retries, and only what the channel calls retryable, waiting at
least the channel's ``retry_after_s``.

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
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select

from alerts.audience import members
from alerts.cap_dispatch import CapDispatch
from alerts.channel_alarm import ALARM_KINDS, FALLBACK, ChannelAlarms
from alerts.channel_message import channel_message
from alerts.channels.base import Channel, ChannelError, Message
from alerts.channels.registry import spec
from alerts.channels.sms import SmsChannel, SmsChannelError
from alerts.channels.sms_twilio import TwilioSms
from alerts.claims import WAITING, Claims, lease_s, owner_id
from alerts.deliveries import apply_recorded_deliveries
from alerts.escalation import Step, render_escalation
from alerts.grouping import render_group
from alerts.noise import rate_decision
from alerts.pipeline import sent_in_window
from alerts.plan import notice_key
from alerts.segments import segments
from alerts.store import Episode, Notification, Store
from config.models import LEVELS, Config
from formats.warning import WarningEvent

__all__ = ["Dispatcher", "backoff_s"]

log = logging.getLogger("hazwatch.alerts")
RECONCILE_AFTER_S = 5.0
STEP_KINDS = ("escalation", "reminder")
PREWRITTEN = ("over-cap", *ALARM_KINDS)
PASS_LIMIT = 500  # rows looked at per pass, so that intake and timers are not starved
TWILIO = ("sms", FALLBACK)  # the outbox channels that go through the given SmsChannel(s)


def backoff_s(attempts: int, rng: random.Random, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    step = min(cap_s, base_s * 2 ** max(attempts - 1, 0))
    return step / 2 + rng.uniform(0, step / 2)


def _int_code(code: str | None) -> int | None:
    """A provider's numeric code for the outbox's integer column; text codes stay in ``error``."""
    return int(code) if code and code.lstrip("-").isdigit() and len(code) < 10 else None


def _urgency(row: Notification) -> str:
    """The level a notice counts as for rate limits: an all-clear counts as the peak it ends."""
    if row.kind == "cleared":
        peak = WarningEvent.from_json(row.event).detail.get("peak", "normal")
        return peak if peak in LEVELS else "normal"
    return row.level if row.level in LEVELS else "normal"


def _plain(rows: list[Notification], config: Config) -> str:
    """The last-resort text: site, colour and values, nothing that can fail to render."""
    colours = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色", "normal": "解除"}
    events = [WarningEvent.from_json(r.event) for r in rows]
    site = config.site(events[0].site)
    items = "；".join(f"{e.sensor} {colours.get(e.level, e.level)} {e.value:g}{e.unit}" for e in events[:4])
    return f"【hazwatch】{site.name}预警：{items}。请立即核实。"


class Dispatcher(CapDispatch):
    def __init__(self, store: Store, config: Config, sms: SmsChannel, *, publish_cap: Callable[[str, bytes], None],
                 clock: Callable[[], dt.datetime], on_result: Callable[[dict[str, Any]], None] = lambda _r: None,
                 status_callback: str | None = None, rng: random.Random | None = None,
                 audio_dir: Path | None = None,
                 publish_audio: Callable[[str, bytes], None] | None = None, claims: Claims | None = None,
                 fallback: SmsChannel | None = None, channels: Mapping[str, Channel] | None = None) -> None:
        self.store, self.config, self.sms, self.fallback = store, config, sms, fallback
        self.channels = dict(channels or {})
        self.alarms = ChannelAlarms(store, config, clock)
        self.claims = claims or Claims(store, owner_id(), lease_s(config.settings.notify.sms_timeout_s))
        self.publish_cap, self.clock, self.on_result = publish_cap, clock, on_result
        self.status_callback = status_callback
        self.rng = rng or random.Random()
        self.audio_dir = audio_dir
        self.publish_audio = publish_audio

    def reconfigure(self, config: Config, channels: Mapping[str, Channel]) -> None:
        """Put a reloaded configuration in force from the next pass (alerts/service.py)."""
        self.config, self.channels = config, dict(channels)
        self.alarms.config, self.alarms.settings = config, config.settings.notify.channel_alarm

    # -- bookkeeping ----------------------------------------------------------------------------
    def recover(self) -> int:
        """After a crash: rows left ``sending`` may or may not have gone out -> reconcile them,
        once their lease has run out (another process may still be sending them)."""
        return self.claims.expire(self.clock())

    def _finish(self, rows: list[Notification], status: str, **values: Any) -> None:
        written = self.claims.write([r.id for r in rows], status=status, **values)
        for r in rows:
            if r.id not in written:
                continue  # taken over by another process, which records the result
            record = {"type": "broadcast" if r.channel == "cap" else "sms", "key": r.key, "episode": r.episode,
                      "site": r.site, "kind": r.kind, "level": r.level, "status": status, "reason": r.reason,
                      "provider_id": values.get("provider_id"), "error": values.get("error"),
                      "suppressed_reason": values.get("suppressed_reason")}
            body = values.get("body", r.body)
            if r.channel != "cap":
                record.update(channel=r.channel, to=r.recipient, role=r.role, body=body, segments=segments(body or ""))
            else:
                record.update(zone=r.recipient, cap=body)
            self.on_result(record)

    # -- the loop -------------------------------------------------------------------------------
    def run_once(self) -> int:
        now = self.clock()
        if self.recover():  # sends of a process that died are reconciled once its lease ran out
            log.warning("alerts: sends left unfinished by a stopped process are reconciled with the provider")
        self.alarms.check()  # a channel failing for after_min minutes, whatever its attempt count
        done: set[str] = set()
        sent = after = 0
        for _ in range(PASS_LIMIT):
            # one row at a time: a process holds only what it is sending, so one that hangs or
            # dies keeps nothing else waiting, and other processes share a backlog
            due = self.claims.claim_due(self.clock(), after=after, limit=1)
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
            if row.channel == "cap":
                self._cap(row)
            elif row.status == "unknown":
                self._reconcile(row)
            else:
                self._sms_group(row, now)
            return 1
        except Exception as exc:  # noqa: BLE001 - keep the rows, try again later
            log.exception("dispatch of %s failed", row.key)
            retry = now + dt.timedelta(seconds=backoff_s(row.attempts + 1, self.rng))
            # what may have gone out is reconciled before it is sent again, never resent blind
            self.claims.write(None, only=("sending",), status="unknown", error=repr(exc), not_before=retry)
            self.claims.write([row.id], only=WAITING, error=repr(exc), not_before=retry)
            return 0

    # -- SMS ------------------------------------------------------------------------------------
    def _provider(self, row: Notification) -> SmsChannel:
        """The second account for its own notices when configured, else the first."""
        return self.fallback if row.channel == FALLBACK and self.fallback is not None else self.sms

    def _channel(self, row: Notification) -> Channel:
        """The channel ``row`` goes out on."""
        if row.channel in TWILIO:
            return TwilioSms(self._provider(row), self.status_callback)
        if row.channel not in self.channels:
            raise RuntimeError(f"channel {row.channel!r} was not built: the service builds the channels "
                               "its routing rules name (alerts.channels.registry.build_routed)")
        return self.channels[row.channel]

    def _message(self, rows: list[Notification], body: str) -> Message:
        return channel_message(rows, body, self.config, text_only=rows[0].channel in TWILIO)

    def _group(self, first: Notification, now: dt.datetime) -> list[Notification]:
        """The pending rows that go out with ``first``: same site, recipient and channel. Earlier
        rows always come along (a recipient never reads the all-clear before the warning, even
        when the warning is in retry backoff or held by quiet hours); later ones when they were
        planned within the grouping window. Empty while an earlier send is still unresolved."""
        horizon = now + dt.timedelta(seconds=self.config.settings.notify.group_wait_s)
        with self.store.session() as s:
            rows = list(s.scalars(select(Notification).where(
                Notification.group_key == first.group_key,
                Notification.status.in_(("pending", "sending", "unknown"))).order_by(Notification.id)))
        if any(r.status != "pending" and r.id < first.id for r in rows):
            return []  # wait until the earlier send is reconciled
        wanted = [r.id for r in rows if r.status == "pending" and (r.id <= first.id or r.not_before <= horizon)]
        held = self.claims.take(wanted, self.clock(), "pending")
        if len([r for r in held if r.id < first.id]) < len([i for i in wanted if i < first.id]):
            return []  # another process holds an earlier row: it goes first
        return held

    def _sms_group(self, first: Notification, now: dt.datetime) -> None:
        rows = self._group(first, now) if first.kind not in STEP_KINDS else [first]
        rows = self._drop_answered(rows)
        if not rows:
            return
        limit = self.config.settings.notify.rate_limit
        if first.channel not in TWILIO and spec(first.channel).kind == "group":
            count, decision = 0, "send"  # a chat group is not a number with a provider's daily cap
        else:
            with self.store.session() as s:
                count = sent_in_window(s, first.recipient, now - dt.timedelta(hours=limit.window_h),
                                       channel="sms" if first.channel in TWILIO else first.channel)
            # an all-clear weighs what it ends: the 解除 after a red (立即转移) is never capped away
            urgency = max((_urgency(r) for r in rows), key=LEVELS.index)
            decision = rate_decision(sent_in_window=count, level=urgency, cfg=limit)
        if decision == "drop":
            self._finish(rows, "suppressed", suppressed_reason=f"rate limit: {count} SMS in {limit.window_h:g} h")
            return
        try:
            body = self._render(rows)
        except Exception:  # noqa: BLE001 - a template bug must not keep a warning from going out
            log.exception("rendering %s failed; sending the plain text", first.key)
            body = _plain(rows, self.config)
        if not self.claims.begin_send([r.id for r in rows], self.clock(), body=body, segments=segments(body),
                                      attempts=rows[0].attempts + 1, delivery_status=None):
            log.warning("SMS to %s: taken over by another process before sending", first.recipient)
            return
        result = self._channel(first).send(self._message(rows, body))
        now, code = self.clock(), _int_code(result.error_code)
        if result.error is None and result.error_code is not None and code is None:  # a text code
            result = replace(result, error=result.error_code)
        if result.status == "sent":
            self.alarms.succeeded(first.channel)
        elif result.status != "failed":  # a refusal of this one message says nothing of the channel
            self.alarms.failed(first.channel, f"{result.error_code or ''} {result.error or ''}".strip())
        if result.status == "sent":
            self._finish(rows, "sent", provider_id=result.provider_id, sent_at=now, body=body)
            if result.provider_id:
                apply_recorded_deliveries(self.store, result.provider_id)  # a fast provider may call back first
            if decision == "send_over_cap":
                self._tell_operators_over_cap(first, count, now)
        elif result.status == "failed":
            self._finish(rows, "failed", error_code=code, error=result.error, body=body)
        elif result.status == "retry":
            delay = max(backoff_s(rows[0].attempts + 1, self.rng), result.retry_after_s or 0.0)
            log.warning("%s to %s: retry in %.1f s (%s %s)", first.channel, first.recipient, delay,
                        result.error_code, result.error)
            self.claims.write([r.id for r in rows], status="pending", error_code=code,
                              error=result.error, not_before=now + dt.timedelta(seconds=delay))
        else:  # unknown: it may have gone out; never resend without asking the provider
            self.claims.write([r.id for r in rows], status="unknown", error=result.error,
                              not_before=now + dt.timedelta(seconds=RECONCILE_AFTER_S))

    def _reconcile(self, row: Notification) -> None:
        with self.store.session() as s:
            ids = list(s.scalars(select(Notification.id).where(
                Notification.group_key == row.group_key, Notification.status == "unknown",
                Notification.body == row.body)))
        rows = self.claims.take(ids, self.clock(), "unknown")  # row is ours; the others if free
        if row.body is None:  # never rendered, so never sent
            self.claims.write([r.id for r in rows], status="pending")
            return
        try:
            channel = self._channel(row)
            if not channel.can_look_up:  # the provider keeps no list: send again (at least once)
                self.claims.write([r.id for r in rows], status="pending")
                return
            sid = channel.find_sent(self._message(rows or [row], row.body), row.created_at - dt.timedelta(minutes=1))
        except (SmsChannelError, ChannelError) as exc:
            self.alarms.failed(row.channel, str(exc))
            self.claims.write([r.id for r in rows], error=str(exc),
                              not_before=self.clock() + dt.timedelta(seconds=RECONCILE_AFTER_S))
            return
        if sid:
            self._finish(rows, "sent", provider_id=sid, sent_at=self.clock())
        else:
            self.claims.write([r.id for r in rows], status="pending")

    def _drop_answered(self, rows: list[Notification]) -> list[Notification]:
        """叫应 steps planned before an acknowledgement are not sent after it."""
        steps = [r for r in rows if r.kind in STEP_KINDS]
        if not steps:
            return rows
        with self.store.session() as s:
            states = dict(s.execute(select(Episode.id, Episode.state).where(
                Episode.id.in_({r.episode for r in steps}))).all())
        stale = [r for r in steps if states.get(r.episode) != "active"]
        if stale:
            self._finish(stale, "suppressed", suppressed_reason="answered before it was sent")
        return [r for r in rows if r not in stale]

    def _render(self, rows: list[Notification]) -> str:
        first = rows[0]
        if first.kind in PREWRITTEN and first.body:
            return first.body  # written when the cap was passed or the channel alarm raised
        event = WarningEvent.from_json(first.event)
        site = self.config.site(event.site)
        tz = self.config.settings.timezone
        if first.kind in STEP_KINDS:
            with self.store.session() as s:
                ep = s.get(Episode, first.episode)
            what, _, arg = first.reason.partition(":")
            esc = self.config.settings.notify.escalation
            if what == "escalation":
                after = next(x.after_min for x in esc.steps if x.tier == arg)
                step = Step("escalation", arg, 0, ep.escalation_since + dt.timedelta(minutes=after),
                            (f"regulators:{arg}",))
            else:
                step = Step("reminder", None, int(arg), ep.red_since + dt.timedelta(
                    minutes=int(arg) * (esc.red_reminder_every_min or 0)), tuple(esc.reminder_audiences))
            return render_escalation(step, site=site, sensor=self.config.sensor(event.site, event.sensor),
                                     episode_level=ep.level, raised_at=ep.raised_at, event=event,
                                     language=first.language, tz=tz)
        latest: dict[str, WarningEvent] = {}
        for r in rows:  # one line per subject: its newest change
            ev = WarningEvent.from_json(r.event)
            if ev.subject not in latest or ev.ts >= latest[ev.subject].ts:
                latest[ev.subject] = ev
        events = list(latest.values())
        sensors = {e.subject: self.config.sensor(e.site, e.sensor) for e in events}
        return render_group(events, site, sensors, role=first.role, language=first.language, tz=tz)

    def _tell_operators_over_cap(self, row: Notification, count: int, now: dt.datetime) -> None:
        """A red message went out past a provider-style cap: operators must confirm it by phone."""
        event = WarningEvent.from_json(row.event)
        site = self.config.site(event.site)
        day = now.strftime("%Y%m%d")
        rows = []
        for op in members(self.config, site, "operators"):
            hours = f"{self.config.settings.notify.rate_limit.window_h:g}"
            body = (f"【hazwatch】{row.recipient}（{row.name}）{hours}小时内已发{count + 1}条短信，超出限额，"
                    f"{site.name}红色预警仍已发出，请电话确认送达。")
            rows.append(Notification(
                key=notice_key(row.recipient, f"over-cap:{day}", "sms", op.address), channel="sms",
                episode=row.episode, site=row.site, kind="over-cap", level="red", recipient=op.address,
                name=op.name, role=op.role, language="zh-CN", reason="rate limit exceeded by red",
                event=row.event, group_key=notice_key(row.recipient, f"over-cap:{day}", "sms", op.address),
                body=body, segments=segments(body),
                status="pending", created_at=now, not_before=now))
        with self.store.session.begin() as s:
            for r in rows:
                if s.scalar(select(Notification.id).where(Notification.key == r.key)) is None:
                    s.add(r)
