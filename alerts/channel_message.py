"""The channel :class:`~alerts.channels.base.Message` of one send from the outbox: the rendered
text, the outbox key, and, for the channels that need more than text, a title (group robots'
markdown heading) and the named fields an approved SMS template is filled from
(``config.channels.FIELDS``; Aliyun and Tencent send only templates).

The fields describe the newest change among the grouped rows, in the recipient's language:
``site`` 石桥沟雨量站, ``enterprise``, ``level`` 红色 (``level_en`` red; the peak for an
all-clear), ``sensor`` 1小时雨量, ``value`` 81.6mm, ``threshold`` 80mm, ``time`` 11月23日10:45,
``event`` 预警发布 / 预警升级 / 预警降级 / 预警解除 / 叫应升级 / 预警提醒, and ``text`` the whole text.
"""

from __future__ import annotations

from collections.abc import Sequence

from alerts.channels.base import Message
from alerts.render import COLOURS, format_time, format_value, headline, language_of, quantity_name
from alerts.store import Notification
from config.models import Config

__all__ = ["EVENT_WORDS", "channel_message", "outbox_key"]

EVENT_WORDS = {
    "zh-CN": {"raised": "预警发布", "escalated": "预警升级", "deescalated": "预警降级", "cleared": "预警解除",
              "escalation": "叫应升级", "reminder": "预警提醒", "over-cap": "超限提醒"},
    "en": {"raised": "warning", "escalated": "warning raised", "deescalated": "warning lowered",
           "cleared": "warning lifted", "escalation": "escalation", "reminder": "reminder",
           "over-cap": "over the cap"},
}


def outbox_key(rows: Sequence[Notification]) -> str:
    """The key a grouped send is known by at the provider: its oldest row's."""
    return min(rows, key=lambda r: r.id or 0).key


def channel_message(rows: Sequence[Notification], body: str, config: Config, *, text_only: bool = False) -> Message:
    """The message for ``rows`` (one recipient, one channel) with the rendered ``body``.
    ``text_only``: a free-text channel (Twilio), which needs neither title nor fields."""
    first = min(rows, key=lambda r: r.id or 0)
    if text_only:
        return Message(first.recipient, body, key=first.key, level=first.level, kind=first.kind,
                       language=first.language)
    try:
        events = [r.warning for r in rows]
    except (TypeError, ValueError):
        events = []
    if not events:
        return Message(first.recipient, body, key=first.key, level=first.level, kind=first.kind,
                       language=first.language, fields={"text": body})
    event = max(events, key=lambda e: e.ts)
    lang = language_of(first.language)
    site, sensor = config.site(event.site), config.sensor(event.site, event.sensor)
    tz = config.settings.timezone
    level = str(event.detail.get("peak") or event.previous) if event.kind == "cleared" else event.level
    fields = {
        "site": site.name if lang == "zh-CN" else (site.name_en or site.name),
        "enterprise": site.enterprise,
        "level": COLOURS[lang].get(level, level),
        "level_en": level,
        "sensor": quantity_name(event, sensor, lang),
        "value": format_value(event.value, event.unit, lang),
        "time": format_time(event.ts, lang, tz),
        "event": EVENT_WORDS[lang].get(first.kind, first.kind),
        "text": body,
    }
    if event.threshold is not None:
        fields["threshold"] = format_value(event.threshold, event.unit, lang)
    title = headline(event, site, sensor, language=lang)
    return Message(first.recipient, body, key=first.key, level=first.level, kind=first.kind, title=title,
                   language=lang, fields=fields)
