"""Rate limit: a number gets at most ``rate_limit.max_per_recipient`` messages per window from one
provider (mainland providers cap notification SMS per number), with room kept for red.

Non-red stops ``red_reserve`` short of the cap and is dropped beyond it (recorded as suppressed);
red is never dropped: past the cap it is sent anyway and the operators are told, in their
language, to confirm it by phone (:class:`OverCap`, after the send is recorded). A chat group is
not a number with a provider's daily cap and is not limited. The decision itself is
:func:`alerts.noise.rate_decision`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from alerts.audience import members
from alerts.channels.registry import outbox_spec
from alerts.notify.deps import TWILIO, Deps
from alerts.notify.record import finish
from alerts.notify.stage import Ctx
from alerts.noise import rate_decision
from alerts.pipeline import sent_in_window
from alerts.plan import notice_key
from alerts.segments import segments
from alerts.store import Notification
from config.models import LEVELS

__all__ = ["OverCap", "RateLimit", "over_cap_text", "urgency"]


def urgency(row: Notification) -> str:
    """The level a row counts as: an all-clear counts as the peak it ends, so the 解除 after a
    red (立即转移) is never capped away."""
    if row.kind == "cleared":
        peak = row.warning.detail.get("peak", "normal")
        return peak if peak in LEVELS else "normal"
    return row.level if row.level in LEVELS else "normal"


class RateLimit:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        first, limit = rows[0], self.deps.config.settings.notify.rate_limit
        if outbox_spec(first.channel).kind == "group":
            return rows
        with self.deps.store.session() as s:
            ctx.count = sent_in_window(s, first.recipient, ctx.now - dt.timedelta(hours=limit.window_h),
                                       channel="sms" if first.channel in TWILIO else first.channel)
        level = max((urgency(r) for r in rows), key=LEVELS.index)
        ctx.decision = rate_decision(sent_in_window=ctx.count, level=level, cfg=limit)
        if ctx.decision == "drop":
            finish(self.deps, rows, "suppressed",
                   suppressed_reason=f"rate limit: {ctx.count} SMS in {limit.window_h:g} h")
            return []
        return rows


def over_cap_text(*, recipient: str, name: str, sent: int, hours: str, site: str, language: str) -> str:
    """The operators' note that a red message went out past the cap."""
    if language == "en":
        return (f"[hazwatch] {recipient} ({name}) has been sent {sent} SMS in {hours} h, over the cap; "
                f"the red warning for {site} was still sent. Please confirm delivery by phone.")
    return (f"【hazwatch】{recipient}（{name}）{hours}小时内已发{sent}条短信，超出限额，"
            f"{site}红色预警仍已发出，请电话确认送达。")


class OverCap:
    """After a red message went out past the cap: one SMS a day per capped number to each
    operator (idempotency key per number, day and operator)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        if ctx.decision != "send_over_cap":
            return rows
        row, config = ctx.claimed or rows[0], self.deps.config
        site = config.site(row.warning.site)
        day, hours = ctx.now.strftime("%Y%m%d"), f"{config.settings.notify.rate_limit.window_h:g}"
        notes = []
        for op in members(config, site, "operators"):
            key = notice_key(row.recipient, f"over-cap:{day}", "sms", op.address)
            body = over_cap_text(recipient=row.recipient, name=row.name, sent=ctx.count + 1, hours=hours,
                                 site=site.name if op.language != "en" else (site.name_en or site.name),
                                 language=op.language)
            notes.append(Notification(
                key=key, channel="sms", episode=row.episode, site=row.site, kind="over-cap", level="red",
                recipient=op.address, name=op.name, role=op.role, language=op.language,
                reason="rate limit exceeded by red", event=row.event, group_key=key, body=body,
                segments=segments(body), status="pending", created_at=ctx.now, not_before=ctx.now))
        with self.deps.store.session.begin() as s:
            for n in notes:
                if s.scalar(select(Notification.id).where(Notification.key == n.key)) is None:
                    s.add(n)
        return rows
