"""Statistics over a time window for ``hazwatch report``: warnings by peak level and site kind,
time to acknowledge (叫应), disposal rate (处置率), SMS outcomes and broadcasts.

Windows are half-open, ``[since, until)``. Episodes count in the window they were raised in
(``raised_at``, the wall clock when hazwatch learnt of them); notifications in the window they
were created in.

- Time to acknowledge covers episodes whose peak reached ``ack_level`` (orange by default: the
  level at which 叫应 applies). It runs from ``escalation_since`` (when the episode reached the
  escalation level and the answer-or-escalate timers started; ``raised_at`` if unset) to
  ``acknowledged_at``, never below zero. The median averages the two middle values; p90 is the
  nearest-rank percentile (the smallest value with at least 90 % of values at or below it).
- SMS outcomes partition the SMS notifications (see :func:`sms_outcome`).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import unicodedata
from collections import Counter
from typing import Any

from sqlalchemy import select

from alerts.store import Action, Episode, Notification, Store
from config.channel_registry import CHANNEL_NAMES, spec
from config.models import LEVELS, Config, level_rank

__all__ = ["SMS_OUTCOMES", "is_sms_channel", "nearest_rank", "render_report", "report", "sms_outcome"]

#: Each SMS notification counts in exactly one of these.
SMS_OUTCOMES: tuple[str, ...] = ("delivered", "awaiting_receipt", "failed", "pending", "suppressed")
_DELIVERED = {"delivered", "read"}
_UNDELIVERED = {"failed", "undelivered", "canceled"}
_KINDS: tuple[str, ...] = ("chemical", "tailings", "rain")


def is_sms_channel(channel: str) -> bool:
    """Twilio's ``sms`` or another SMS channel of the registry (``sms-aliyun``, ``sms-tencent``);
    not the channel alarm's second account, nor broadcasts or chat groups."""
    return channel in CHANNEL_NAMES and spec(channel).kind == "sms"


def sms_outcome(status: str, delivery_status: str | None) -> str:
    """Where one SMS stands: ``status`` is the outbox status, ``delivery_status`` Twilio's callback.

    delivered: sent and the handset receipt came back; awaiting_receipt: sent, no final callback
    yet; failed: the provider refused it or reported it undelivered; pending: not sent yet
    (waiting, sending, or a timeout being reconciled); suppressed: silenced, inhibited or capped.
    """
    if status == "suppressed":
        return "suppressed"
    if status == "failed" or delivery_status in _UNDELIVERED:
        return "failed"
    if status == "sent":
        return "delivered" if delivery_status in _DELIVERED else "awaiting_receipt"
    return "pending"


def nearest_rank(values: list[float], pct: float) -> float:
    """The nearest-rank percentile of non-empty ``values`` (``pct`` in (0, 100])."""
    ordered = sorted(values)
    return ordered[max(math.ceil(pct / 100 * len(ordered)), 1) - 1]


def _minutes(td: dt.timedelta) -> float:
    return round(max(td.total_seconds(), 0.0) / 60.0, 2)


def report(store: Store, since: dt.datetime, until: dt.datetime,
           ack_level: str = "orange", config: Config | None = None) -> dict[str, Any]:
    """Statistics for ``[since, until)`` as plain data (JSON-ready with orjson). With ``config``,
    also the regional plans' indicators (``coverage``, ``safety_index``: alerts/report_indicators.py)."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("report window bounds need a timezone")
    if until <= since:
        raise ValueError(f"until ({until.isoformat()}) must be after since ({since.isoformat()})")
    in_window = (Episode.raised_at >= since) & (Episode.raised_at < until)
    with store.session() as s:
        episodes = s.execute(select(
            Episode.id, Episode.peak, Episode.kind, Episode.false_alarm, Episode.raised_at,
            Episode.escalation_since, Episode.acknowledged_at,
        ).where(in_window)).all()
        disposed = set(s.scalars(
            select(Action.episode_id).join(Episode, Episode.id == Action.episode_id)
            .where(in_window, Action.action == "dispose").distinct()
        ).all())
        notes = s.execute(select(
            Notification.id, Notification.channel, Notification.status, Notification.delivery_status,
            Notification.segments, Notification.provider_id,
        ).where(Notification.created_at >= since, Notification.created_at < until)).all()

    levels = list(LEVELS[1:])
    kinds = list(_KINDS) + sorted({e.kind for e in episodes} - set(_KINDS))
    grid = {lv: {k: 0 for k in kinds} for lv in levels}
    for e in episodes:
        grid.setdefault(e.peak, {k: 0 for k in kinds})[e.kind] += 1
    by_level = {lv: sum(row.values()) for lv, row in grid.items()}
    by_kind = {k: sum(row[k] for row in grid.values()) for k in kinds}

    needing = [e for e in episodes
               if e.peak in LEVELS and level_rank(e.peak) >= level_rank(ack_level)]
    waits = [_minutes(e.acknowledged_at - (e.escalation_since or e.raised_at))
             for e in needing if e.acknowledged_at is not None]
    ack = {
        "level": ack_level, "episodes": len(needing), "acknowledged": len(waits),
        "unacknowledged": len(needing) - len(waits),
        "median_min": statistics.median(waits) if waits else None,
        "p90_min": nearest_rank(waits, 90) if waits else None,
        "max_min": max(waits) if waits else None,
    }

    sms = Counter({o: 0 for o in SMS_OUTCOMES})
    segments = 0
    cap = Counter({"sent": 0, "failed": 0, "pending": 0, "suppressed": 0})
    messages: set[str] = set()  # a grouped SMS is one message for several notices: count it once
    for n in notes:
        if is_sms_channel(n.channel):
            if n.provider_id:
                if n.provider_id in messages:
                    continue
                messages.add(n.provider_id)
            outcome = sms_outcome(n.status, n.delivery_status)
            sms[outcome] += 1
            if outcome in ("delivered", "awaiting_receipt"):
                segments += n.segments or 0
        elif n.channel == "cap":
            cap[n.status if n.status in cap else "pending"] += 1

    extra: dict[str, Any] = {}
    if config is not None:
        from alerts.report_indicators import indicators

        extra = indicators(store, config, since, until)
    return {
        "since": since, "until": until,
        "episodes": len(episodes),
        "false_alarms": sum(1 for e in episodes if e.false_alarm),
        "by_level": by_level, "by_kind": by_kind, "by_level_kind": grid,
        "acknowledge": ack,
        "disposal": {"episodes": len(episodes), "disposed": len(disposed),
                     "rate": round(len(disposed) / len(episodes), 4) if episodes else None},
        "sms": {**dict(sms), "total": sum(sms.values()), "segments_sent": segments},
        "broadcasts": dict(cap),
        **extra,
    }


_LEVEL_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
_KIND_ZH = {"chemical": "危化品", "tailings": "尾矿库", "rain": "雨量站"}


def _pad(text: str, width: int, right: bool = False) -> str:
    """Pad to ``width`` terminal cells: CJK characters take two."""
    cells = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    fill = " " * max(width - cells, 0)
    return fill + text if right else text + fill


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def render_report(data: dict[str, Any], tz: dt.tzinfo | None = None) -> str:
    """``data`` from :func:`report` as plain text, zh-CN with English in parentheses."""
    def local(t: dt.datetime) -> str:
        return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z").strip() if tz else t.isoformat()

    grid: dict[str, dict[str, int]] = data["by_level_kind"]
    kinds = list(data["by_kind"])
    width = max(10, *(len(k) + 2 for k in kinds))

    def row(label: str, cells: list[object], total: object) -> str:
        return (_pad(label, 16) + "".join(_pad(str(c), width, right=True) for c in cells)
                + _pad(str(total), 16, right=True))

    lines = [f"预警统计 (warning report)  {local(data['since'])} — {local(data['until'])}", "",
             "按峰值级别与站点类型 (by peak level and site kind)",
             row("级别 (level)", list(kinds), "合计 (total)")]
    for lv, counts in grid.items():
        label = f"{_LEVEL_ZH.get(lv, lv)} ({lv})"
        lines.append(row(label, [counts[k] for k in kinds], data["by_level"][lv]))
    lines.append(row("合计 (total)", [data["by_kind"][k] for k in kinds], data["episodes"]))
    lines.append("  " + ", ".join(f"{k} = {_KIND_ZH[k]}" for k in kinds if k in _KIND_ZH))
    ack, disp, sms, cap = data["acknowledge"], data["disposal"], data["sms"], data["broadcasts"]
    rate = "-" if disp["rate"] is None else f"{disp['rate'] * 100:.1f}%"
    lines += [
        "",
        (f"叫应 / 确认用时 (time to acknowledge, {ack['level']}+): "
         f"{ack['acknowledged']}/{ack['episodes']} 已确认 (acknowledged); "
         f"中位数 (median) {_fmt(ack['median_min'], ' min')}, P90 {_fmt(ack['p90_min'], ' min')}, "
         f"最长 (max) {_fmt(ack['max_min'], ' min')}"),
        f"处置率 (disposal rate): {disp['disposed']}/{disp['episodes']} = {rate}",
        f"误报 (false alarms): {data['false_alarms']}",
        (f"短信 (SMS): 送达 (delivered) {sms['delivered']}, 待回执 (awaiting receipt) "
         f"{sms['awaiting_receipt']}, 失败 (failed) {sms['failed']}, 待发送 (pending) "
         f"{sms['pending']}, 已抑制 (suppressed) {sms['suppressed']}; 共 (total) {sms['total']}, "
         f"计费条数 (segments sent) {sms['segments_sent']}"),
        (f"广播 (CAP broadcasts): 已发布 (sent) {cap['sent']}, 失败 (failed) {cap['failed']}, "
         f"待发布 (pending) {cap['pending']}, 已抑制 (suppressed) {cap['suppressed']}"),
    ]
    if "coverage" in data:
        from alerts.report_indicators import render_indicators

        lines += render_indicators(data, tz)
    return "\n".join(lines)
