"""Render: the text of one message, in the recipient's language, fitted to the SMS budget.

Grouped changes become one text with a line per subject (its newest change,
:func:`alerts.grouping.render_group`); a 叫应 step its own text
(:func:`alerts.escalation.render_escalation`); over-cap notes and channel alarms were written
when they were planned. A renderer that fails must not keep a warning from going out: the
last-resort text (:func:`plain`) says site, colour and values, and nothing that can fail.
"""

from __future__ import annotations

import logging

from alerts.channel_alarm import ALARM_KINDS
from alerts.escalation import STEP_KINDS, render_escalation, step_of
from alerts.grouping import render_group
from alerts.notify.deps import Deps
from alerts.notify.stage import Ctx
from alerts.store import Episode, Notification
from alerts.words import COLOURS
from config.models import Config
from formats.warning import WarningEvent

__all__ = ["PREWRITTEN", "Render", "plain"]

log = logging.getLogger("hazwatch.alerts")
PREWRITTEN = ("over-cap", *ALARM_KINDS)
_COLOURS = {"zh-CN": {**COLOURS["zh-CN"], "normal": "解除"}, "en": {**COLOURS["en"], "normal": "lifted"}}
"""The colour words, an all-clear's being the lifting of the warning."""


def plain(rows: list[Notification], config: Config) -> str:
    """The last-resort text: site, colour and values, nothing that can fail to render."""
    events = [r.warning for r in rows]
    site = config.site(events[0].site)
    if rows[0].language == "en":
        items = "; ".join(f"{e.sensor} {_COLOURS['en'].get(e.level, e.level)} {e.value:g}{e.unit}" for e in events[:4])
        return f"[hazwatch] {site.name_en or site.name} warning: {items}. Please check at once."
    items = "；".join(f"{e.sensor} {_COLOURS['zh-CN'].get(e.level, e.level)} {e.value:g}{e.unit}" for e in events[:4])
    return f"【hazwatch】{site.name}预警：{items}。请立即核实。"


class Render:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        try:
            ctx.body = self.text(rows)
        except Exception:  # noqa: BLE001 - a template bug must not keep a warning from going out
            log.exception("rendering %s failed; sending the plain text", rows[0].key)
            ctx.body = plain(rows, self.deps.config)
        return rows

    def text(self, rows: list[Notification]) -> str:
        first, config = rows[0], self.deps.config
        if first.kind in PREWRITTEN and first.body:
            return first.body
        event = first.warning
        site, tz = config.site(event.site), config.settings.timezone
        if first.kind in STEP_KINDS:
            with self.deps.store.session() as s:
                ep = s.get(Episode, first.episode)
            assert ep is not None, f"{first.key}: its episode {first.episode} is not in the store"
            step = step_of(first.reason, escalation_since=ep.escalation_since, red_since=ep.red_since,
                           cfg=config.settings.notify.escalation)
            return render_escalation(step, site=site, sensor=config.sensor(event.site, event.sensor),
                                     episode_level=ep.level, raised_at=ep.raised_at, event=event,
                                     language=first.language, tz=tz)
        latest: dict[str, WarningEvent] = {}
        for r in rows:  # one line per subject: its newest change
            ev = r.warning
            if ev.subject not in latest or ev.ts >= latest[ev.subject].ts:
                latest[ev.subject] = ev
        events = list(latest.values())
        sensors = {e.subject: config.sensor(e.site, e.sensor) for e in events}
        return render_group(events, site, sensors, role=first.role, language=first.language, tz=tz)
