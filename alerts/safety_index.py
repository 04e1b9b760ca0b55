"""The enterprise dynamic safety index (危化企业安全管理动态指数): per enterprise and local day, 0-100,
higher is better, with a ranking on the mean of the last ``trend_days`` days (lowest first: whom
to inspect) and the daily trend. docs/INDICATORS.md
gives the formula; the weights and limits are ``indicators.safety_index`` (config/indicators.py).

Each component is a score in [0, 1] (1 best), or None when it does not apply that day; the index
is ``100 * sum(w * score) / sum(w)`` over the components that apply (weight above 0):

- ``warnings``: ``1 - points / warning_points_zero`` (at least 0), a warning episode raised that
  day costing ``level_points[peak]``; equipment faults and false alarms are left to their own
  components. Always applies.
- ``acknowledge`` (叫应): of the episodes raised that day whose peak reached the 叫应 level
  (``notify.escalation.min_level``), the share answered within ``ack_due_min`` of reaching it
  (``escalation_since``, else ``raised_at``). One unanswered and not yet due is left out.
- ``disposal`` (处置率): of the episodes raised that day that are not false alarms and have ended
  (cleared or closed) or were disposed, the share with disposal feedback (处置反馈).
- ``online`` (在线率): ``1 - sensor-time in an equipment fault / sensor-time`` of the enterprise's
  configured sensors over the day (up to ``as_of`` today). The store records sensor fault
  episodes (offline, stuck or out of range together, rule ``equipment_fault``), so a sensor in
  any fault counts as not online.
- ``false_alarms`` (误报): ``1 - false alarms / episodes`` raised that day (faults excepted).
- ``overdue_repairs``: ``1 - sensors with a fault open longer than repair_due_h during the day /
  sensors``. The store has no maintenance or calibration schedule, so overdue *scheduled*
  maintenance is not computed; a fault left unrepaired is what it records.

Episodes count on the local day (``settings.timezone``) they were raised; acknowledgements and
disposals count whenever they came before ``as_of``, so the last days may still improve.
:func:`day_scores` is the pure rule; :func:`safety_index` reads the store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select

from alerts.store import Action, Episode, LevelChange, Store
from config.indicators import SafetyIndexSettings
from config.models import Config, level_rank

__all__ = ["COMPONENTS", "FAULT_RULE", "EpisodeFacts", "day_scores", "index_of", "safety_index"]

COMPONENTS: tuple[str, ...] = ("warnings", "acknowledge", "disposal", "online", "false_alarms", "overdue_repairs")
FAULT_RULE = "equipment_fault"  # rules/quality.py FAULT_RULE: one episode per sensor fault episode


@dataclass(frozen=True)
class EpisodeFacts:
    """What the index reads of one episode (all times aware UTC)."""

    rule: str
    subject: str
    peak: str
    raised_at: dt.datetime
    state: str = "active"
    escalation_since: dt.datetime | None = None
    acknowledged_at: dt.datetime | None = None
    false_alarm: bool = False
    disposed: bool = False
    fault_start: dt.datetime | None = None
    """Equipment faults: when the fault began (event time) and ended (None: still open)."""
    fault_end: dt.datetime | None = None


def _ratio(good: int, total: int) -> float | None:
    return round(good / total, 4) if total else None


def day_scores(start: dt.datetime, end: dt.datetime, as_of: dt.datetime, episodes: Iterable[EpisodeFacts],
               sensors: Collection[str], settings: SafetyIndexSettings, *, ack_level: str,
               ack_due_min: float) -> dict[str, dict[str, Any]]:
    """The components of one enterprise's day ``[start, end)``, seen at ``as_of``: each a dict
    with its ``score`` (None: does not apply) and the counts it comes from."""
    eps = list(episodes)
    upto = min(end, as_of)
    today = [e for e in eps if start <= e.raised_at < end and e.raised_at < as_of]
    warnings = [e for e in today if e.rule != FAULT_RULE]
    counted = [e for e in warnings if not e.false_alarm]
    by_level = {lv: sum(1 for e in counted if e.peak == lv) for lv in settings.level_points}
    points = sum(settings.level_points.get(e.peak, 0.0) for e in counted)  # type: ignore[call-overload]
    out: dict[str, dict[str, Any]] = {"warnings": {
        "score": round(max(0.0, 1 - points / settings.warning_points_zero), 4), "by_level": by_level,
        "points": points}}

    due = dt.timedelta(minutes=ack_due_min)
    on_time = late = 0
    for e in warnings:
        if e.peak not in ("blue", "yellow", "orange", "red") or level_rank(e.peak) < level_rank(ack_level):
            continue
        deadline = (e.escalation_since or e.raised_at) + due
        answered = e.acknowledged_at is not None and e.acknowledged_at < as_of
        if answered and e.acknowledged_at <= deadline:  # type: ignore[operator]
            on_time += 1
        elif answered or as_of >= deadline:
            late += 1
    out["acknowledge"] = {"score": _ratio(on_time, on_time + late), "on_time": on_time, "late": late}

    ended = [e for e in today if not e.false_alarm and (e.disposed or e.state in ("cleared", "closed"))]
    disposed = sum(1 for e in ended if e.disposed)
    out["disposal"] = {"score": _ratio(disposed, len(ended)), "disposed": disposed, "due": len(ended)}

    false = sum(1 for e in warnings if e.false_alarm)
    out["false_alarms"] = {"score": None if not warnings else round(1 - false / len(warnings), 4),
                           "false_alarms": false, "episodes": len(warnings)}

    faults = [e for e in eps if e.rule == FAULT_RULE and e.subject in sensors and e.fault_start is not None]
    span = (upto - start).total_seconds()
    down: dict[str, list[tuple[dt.datetime, dt.datetime]]] = {}
    overdue: set[str] = set()
    repair = dt.timedelta(hours=settings.repair_due_h)
    for e in faults:
        assert e.fault_start is not None
        stop = min(e.fault_end or upto, upto)
        a, b = max(e.fault_start, start), stop
        if b > a:
            down.setdefault(e.subject, []).append((a, b))
        if max(e.fault_start + repair, start) < stop:  # open past its repair time within the day
            overdue.add(e.subject)
    lost = sum(_union(spans) for spans in down.values())
    n = len(sensors)
    out["online"] = {"score": None if not n or span <= 0 else round(max(0.0, 1 - lost / (span * n)), 4),
                     "sensors": n, "faulty_sensors": len(down)}
    out["overdue_repairs"] = {"score": None if not n or span <= 0 else round(1 - len(overdue) / n, 4),
                              "overdue": sorted(overdue)}
    return out


def _union(spans: list[tuple[dt.datetime, dt.datetime]]) -> float:
    """Seconds covered by the union of ``spans``."""
    total, cur_a, cur_b = 0.0, None, None
    for a, b in sorted(spans):
        if cur_b is None or a > cur_b:
            if cur_b is not None and cur_a is not None:
                total += (cur_b - cur_a).total_seconds()
            cur_a, cur_b = a, b
        else:
            cur_b = max(cur_b, b)
    if cur_a is not None and cur_b is not None:
        total += (cur_b - cur_a).total_seconds()
    return total


def index_of(components: Mapping[str, Mapping[str, Any]], weights: Mapping[str, float]) -> float | None:
    """``100 * sum(w * score) / sum(w)`` over the components that apply; None when none does."""
    used = [(weights[c], components[c]["score"]) for c in COMPONENTS
            if weights.get(c, 0) > 0 and components.get(c, {}).get("score") is not None]
    total = sum(w for w, _ in used)
    return round(100 * sum(w * s for w, s in used) / total, 1) if total else None


def _days(as_of: dt.datetime, tz: dt.tzinfo, n: int) -> list[tuple[dt.date, dt.datetime, dt.datetime]]:
    last = as_of.astimezone(tz).date()
    out = []
    for k in range(n - 1, -1, -1):
        d = last - dt.timedelta(days=k)
        a = dt.datetime.combine(d, dt.time(), tz).astimezone(dt.UTC)
        b = dt.datetime.combine(d + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)
        out.append((d, a, b))
    return out


def _from_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def safety_index(store: Store, config: Config, as_of: dt.datetime, *, days: int | None = None,
                 enterprises: Collection[str] | None = None) -> dict[str, Any]:
    """The index of every configured enterprise (or of ``enterprises``) for the last ``days`` local
    days up to ``as_of`` (``trend_days`` by default), ranked lowest first; plain, JSON-ready data."""
    if as_of.tzinfo is None:
        raise ValueError("as_of needs a timezone")
    settings = config.settings.indicators.safety_index
    escalation = config.settings.notify.escalation
    ack_due = settings.ack_due_min or (escalation.steps[0].after_min if escalation.steps else 10.0)
    tz = ZoneInfo(config.settings.timezone)
    window = _days(as_of, tz, days or settings.trend_days)
    first = window[0][1]
    owner = {s.id: s.enterprise for s in config.sites}
    names = [e for e in dict.fromkeys(s.enterprise for s in config.sites)
             if enterprises is None or e in enterprises]
    sensors = {e: {f"{s.id}/{x.id}" for s in config.sites if s.enterprise == e for x in s.sensors} for e in names}
    scope = (Episode.raised_at < as_of) & or_(
        Episode.raised_at >= first,
        (Episode.rule == FAULT_RULE) & or_(Episode.cleared_at.is_(None), Episode.cleared_at >= first))
    if enterprises is not None:  # the sites of those enterprises, and episodes of sites gone since
        scope &= or_(Episode.site.in_([s.id for s in config.sites if s.enterprise in names]),
                     Episode.site.not_in(list(owner)) & Episode.enterprise.in_(names))
    with store.session() as s:
        rows = s.execute(select(
            Episode.id, Episode.site, Episode.enterprise, Episode.rule, Episode.subject, Episode.peak,
            Episode.raised_at, Episode.raised_ts, Episode.state, Episode.escalation_since, Episode.acknowledged_at,
            Episode.false_alarm, Episode.cleared_at, Episode.closed_at).where(scope)).all()
        disposed = set(s.scalars(select(Action.episode_id).join(Episode, Episode.id == Action.episode_id).where(
            scope, Action.action == "dispose", Action.at < as_of).distinct()))
        ends = dict(s.execute(  # type: ignore[arg-type]
            select(LevelChange.episode_id, func.max(LevelChange.ts)).join(Episode, Episode.id == LevelChange.episode_id)
            .where(scope, Episode.rule == FAULT_RULE, LevelChange.kind == "cleared")
            .group_by(LevelChange.episode_id)).all())
    # per enterprise: the warnings by the day they were raised, the sensor faults for every day
    day_of = {d: i for i, (d, _, _) in enumerate(window)}
    raised: dict[str, list[list[EpisodeFacts]]] = {e: [[] for _ in window] for e in names}
    faults: dict[str, list[EpisodeFacts]] = {e: [] for e in names}
    for e in rows:
        ent = owner.get(e.site, e.enterprise)
        if ent not in faults:
            continue
        fault = e.rule == FAULT_RULE
        end = _from_ms(ends[e.id]) if e.id in ends else (e.cleared_at or e.closed_at)
        fact = EpisodeFacts(
            rule=e.rule, subject=e.subject, peak=e.peak, raised_at=e.raised_at, state=e.state,
            escalation_since=e.escalation_since, acknowledged_at=e.acknowledged_at, false_alarm=e.false_alarm,
            disposed=e.id in disposed, fault_start=_from_ms(e.raised_ts) if fault else None,
            fault_end=end if fault else None)
        day = day_of.get(e.raised_at.astimezone(tz).date())
        if day is not None:
            raised[ent][day].append(fact)
        if fault:
            faults[ent].append(fact)
    weights = settings.weights.model_dump()
    out = []
    for ent in names:
        per_day = []
        for i, (d, a, b) in enumerate(window):
            today = raised[ent][i] + [  # the faults of other days that were open during this one
                f for f in faults[ent] if not a <= f.raised_at < b and f.fault_start is not None
                and f.fault_start < b and (f.fault_end is None or f.fault_end > a)]
            comps = day_scores(a, b, as_of, today, sensors[ent], settings,
                               ack_level=escalation.min_level, ack_due_min=ack_due)
            per_day.append({"date": d.isoformat(), "index": index_of(comps, weights), "components": comps})
        trend = [p["index"] for p in per_day]
        known = [v for v in trend if v is not None]
        before = next((v for v in reversed(trend[:-1]) if v is not None), None)
        latest = trend[-1]
        out.append({"enterprise": ent, "sites": [s.id for s in config.sites if s.enterprise == ent],
                    "sensors": len(sensors[ent]), "mean": round(sum(known) / len(known), 1) if known else None,
                    "index": latest, "trend": trend,
                    "change": None if latest is None or before is None else round(latest - before, 1),
                    "today": per_day[-1]["components"], "days": per_day})
    # ranked on the mean of the days (a quiet first hour of today must not hide yesterday)
    out.sort(key=lambda r: (r["mean"] is None, r["mean"] if r["mean"] is not None else 0, r["enterprise"]))
    for rank, r in enumerate(out, 1):
        r["rank"] = rank
    return {"as_of": as_of, "dates": [d.isoformat() for d, _, _ in window], "weights": weights,
            "ack_level": escalation.min_level, "ack_due_min": ack_due, "repair_due_h": settings.repair_due_h,
            "enterprises": out}
