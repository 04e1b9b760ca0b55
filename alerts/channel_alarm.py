"""Channel alarms: operators learn that a notification channel is failing, and that it recovered.

A failed send attempt (the provider refused it for now, could not be reached, or answered in a way
that leaves the send unknown) counts against its channel; a sent message clears the count. After
``notify.channel_alarm.after_failures`` failures in a row, or ``after_min`` minutes since the
first of them, whichever comes first, the alarm is raised:

- the console shows a banner to operators and admins (``GET /api/channels/alarms``), until it clears;
- every operator gets an SMS through ``sms_fallback``, the second SMS account, when one is
  configured (queued in the outbox like any notice: exactly once, retried, reconciled);
- ``/metrics`` of the alerts service: ``hazwatch_channel_alarms_total{channel}``,
  ``hazwatch_channel_alarm{channel}`` (1 while raised), ``hazwatch_channel_send_failures_total``.

The next success clears it, with an all-clear SMS through the same second account. Nothing is
dropped meanwhile: the failed notices stay in the outbox and go out on recovery (dispatch).

The state lives in the store (``channel_alarms``), shared by every alerts process, so the count
spans processes and survives a restart. Raising and clearing are conditional updates: of several
processes, exactly one sees its update change the row, and only that one tells the operators.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from prometheus_client import Counter, Gauge
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from alerts.plan import notice_key
from alerts.segments import segments
from alerts.store import ChannelState, Notification, Store
from config.channel_registry import CHANNEL_NAMES, spec
from config.models import Config

__all__ = ["ALARM_KINDS", "FALLBACK", "ChannelAlarms", "active_alarms"]

log = logging.getLogger("hazwatch.alerts.channels")

FALLBACK = "sms-fallback"
"""The outbox channel of notices that go through ``settings.sms_fallback``."""
ALARM_KINDS = ("channel-alarm", "channel-ok")

SEND_FAILURES = Counter("hazwatch_channel_send_failures", "Failed send attempts", ["channel"])
ALARMS = Counter("hazwatch_channel_alarms", "Channel alarms raised", ["channel"])
ALARM_UP = Gauge("hazwatch_channel_alarm", "1 while the channel's alarm is raised", ["channel"])

_NAMES = {"sms": ("短信", "SMS"), FALLBACK: ("备用短信", "fallback SMS")}


@dataclass(frozen=True)
class Alarm:
    channel: str
    failures: int
    failing_since: dt.datetime | None
    last_error: str | None
    raised_at: dt.datetime | None


def active_alarms(store: Store) -> list[Alarm]:
    """The raised alarms, oldest first (for the console)."""
    with store.session() as s:
        rows = s.scalars(select(ChannelState).where(ChannelState.raised_at.is_not(None))
                         .order_by(ChannelState.raised_at)).all()
    return [Alarm(r.channel, r.failures, r.failing_since, r.last_error, r.raised_at) for r in rows]


class ChannelAlarms:
    """Counts a channel's failures and raises or clears its alarm (see the module docstring)."""

    def __init__(self, store: Store, config: Config, clock: Callable[[], dt.datetime]) -> None:
        self.store, self.config, self.clock = store, config, clock
        self.settings = config.settings.notify.channel_alarm

    def failed(self, channel: str, error: str | None) -> None:
        now = self.clock()
        SEND_FAILURES.labels(channel).inc()
        if not self._count(channel, now, error):
            try:  # the channel's first failure ever
                with self.store.session.begin() as s:
                    s.add(ChannelState(channel=channel, failures=1, failing_since=now,
                                       last_error=(error or "")[:500]))
            except IntegrityError:  # another process inserted it first: count on its row
                self._count(channel, now, error)
        self.check(channel)

    def _count(self, channel: str, now: dt.datetime, error: str | None) -> bool:
        """One more failure on the channel's row; False when it has no row yet."""
        with self.store.session.begin() as s:
            changed = s.execute(update(ChannelState).where(ChannelState.channel == channel).values(
                failures=ChannelState.failures + 1, last_error=(error or "")[:500])).rowcount
            s.execute(update(ChannelState).where(ChannelState.channel == channel,
                                                 ChannelState.failing_since.is_(None)).values(failing_since=now))
        return bool(changed)

    def succeeded(self, channel: str) -> None:
        now = self.clock()
        with self.store.session.begin() as s:
            cleared = s.execute(update(ChannelState).where(
                ChannelState.channel == channel, ChannelState.raised_at.is_not(None)).values(
                raised_at=None, cleared_at=now, failures=0, failing_since=None)).rowcount
            s.execute(update(ChannelState).where(ChannelState.channel == channel, ChannelState.failures > 0)
                      .values(failures=0, failing_since=None))
        if cleared:
            ALARM_UP.labels(channel).set(0)
            log.warning("channel %s works again: alarm cleared", channel)
            self._tell_operators(channel, "channel-ok", now, None)

    def check(self, channel: str | None = None) -> None:
        """Raise the alarm of every failing channel (or of ``channel``) that passed a limit."""
        now = self.clock()
        late = now - dt.timedelta(minutes=self.settings.after_min)
        where = [ChannelState.raised_at.is_(None), ChannelState.failures > 0,
                 (ChannelState.failures >= self.settings.after_failures) | (ChannelState.failing_since <= late)]
        if channel is not None:
            where.append(ChannelState.channel == channel)
        with self.store.session() as s:
            due = s.scalars(select(ChannelState).where(*where)).all()
        for row in due:
            with self.store.session.begin() as s:
                raised = s.execute(update(ChannelState).where(
                    ChannelState.channel == row.channel, ChannelState.raised_at.is_(None)).values(
                    raised_at=now, cleared_at=None)).rowcount
            if raised:
                ALARMS.labels(row.channel).inc()
                ALARM_UP.labels(row.channel).set(1)
                log.error("channel %s is failing: %d attempts since %s, last error %s",
                          row.channel, row.failures, row.failing_since, row.last_error)
                self._tell_operators(row.channel, "channel-alarm", now, row)

    def _tell_operators(self, channel: str, kind: str, now: dt.datetime, row: ChannelState | None) -> None:
        """One SMS per operator through the second account; none when there is no second account,
        or when the second account is the one failing."""
        if self.config.settings.sms_fallback is None or channel == FALLBACK:
            return
        event = orjson.dumps({"channel": channel, "state": kind, "at": now.isoformat()}).decode()
        episode = f"channel:{channel}"
        notices = []
        for op in (r for r in self.config.recipients if r.role == "operator"):
            body = _text(channel, kind, now, row, op.language, self.config.settings.timezone)
            key = notice_key(episode, f"{kind}:{now.isoformat()}", FALLBACK, op.phone)
            notices.append(Notification(
                key=key, channel=FALLBACK, episode=episode, site="", kind=kind, level="red",
                recipient=op.phone, name=op.name, role="operator", language=op.language,
                reason=f"{channel} {'failing' if kind == 'channel-alarm' else 'recovered'}", event=event,
                group_key=key, body=body, segments=segments(body), status="pending", created_at=now,
                not_before=now))
        with self.store.session.begin() as s:
            for n in notices:
                if s.scalar(select(Notification.id).where(Notification.key == n.key)) is None:
                    s.add(n)


def _label(channel: str) -> tuple[str, str]:
    """The registry's name for people of a channel, else its name."""
    label = spec(channel).label if channel in CHANNEL_NAMES else ("", "")
    return (label[0] or channel, label[1] or channel)


def _text(channel: str, kind: str, now: dt.datetime, row: ChannelState | None, language: str, tz: str) -> str:
    from zoneinfo import ZoneInfo

    zh, en = _NAMES.get(channel) or _label(channel)
    local = now.astimezone(ZoneInfo(tz)).strftime("%H:%M")
    if kind == "channel-ok":
        if language == "en":
            return f"[hazwatch] The {en} channel works again since {local}; waiting notices are going out."
        return f"【hazwatch】{zh}通道已于{local}恢复，积压的通知正在补发。"
    assert row is not None
    since = (row.failing_since or now).astimezone(ZoneInfo(tz)).strftime("%H:%M")
    if language == "en":
        return (f"[hazwatch] The {en} channel is failing since {since} ({row.failures} failed attempts). "
                "Warnings wait and are retried; reach recipients by phone or broadcast.")
    return (f"【hazwatch】{zh}通道自{since}起发送失败（{row.failures}次），预警短信正在排队重试，"
            "请电话或广播通知相关人员。")
