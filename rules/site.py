"""Site rules: k-of-n voting, GB 39496-2020 point -> item aggregation, composite all-of / any-of.

They work on *levels*, not readings: after the sensor stages of a micro-batch, the level changes
they produced (a handful per batch, never one per reading) are applied one at a time in event
order -- ``(ts, subject, rule)``, the order the engine emits them in -- to a per-site table of
current levels, and the site's rules are re-evaluated in their configured order after each one.
A site rule's own level change is an ordinary warning event (subject ``SITE/RULE``, ``ts`` of the
change that caused it) and is itself a level that later site rules of the site may use.

Equipment-fault warnings are not inputs: a faulty sensor is quarantined and keeps the level it
had, so it neither votes a level up nor down while it is in fault.

State per site (``export_site``/``import_site``): the levels of the member rules and, per site
rule, ``[level, episode_ts, peak]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from config.models import LEVELS, Config, Site
from config.site_rules import GB39496_STEPS, AggregateRule, CompositeRule, Member, VoteRule, member_list
from formats.warning import WarningEvent, episode_id, event_kind

__all__ = ["SiteStage"]

_RANK = {level: i for i, level in enumerate(LEVELS)}
_GB = tuple((n, _RANK[at], _RANK[to]) for n, at, to in GB39496_STEPS)


@dataclass
class _SiteState:
    points: dict[str, int] = field(default_factory=dict)
    """``sensor|rule`` (or a site rule's name) -> current level rank; absent = normal."""
    values: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    rules: dict[str, list[int]] = field(default_factory=dict)
    """site rule -> [level, episode_ts, peak]"""


class SiteStage:
    """Evaluates the site rules of every site that has any."""

    def __init__(self, config: Config) -> None:
        self.sites: dict[str, Site] = {s.id: s for s in config.sites if s.site_rules}
        self.state: dict[str, _SiteState] = {s: _SiteState() for s in self.sites}
        # which point keys can change each site's rules: a point not used is not tracked
        self._used: dict[str, set[str]] = {}
        for sid, site in self.sites.items():
            used: set[str] = set()
            for rule in site.site_rules:
                used |= {m.rule if m.sensor is None else m.label for m in member_list(rule)}
            self._used[sid] = used

    def __bool__(self) -> bool:
        return bool(self.sites)

    # -- evaluation -----------------------------------------------------------------------------
    def process(self, events: Iterable[WarningEvent], emitted_at: int) -> list[WarningEvent]:
        """Apply the sensor rules' level changes (in the given order); return the site rules' ones."""
        out: list[WarningEvent] = []
        for ev in events:
            if ev.site not in self.sites:
                continue
            used = self._used[ev.site]
            key = f"{ev.sensor}|{ev.rule}"
            if key not in used and ev.rule not in used:
                continue
            st = self.state[ev.site]
            rank = _RANK[ev.level]
            if rank:
                st.points[key] = rank
            else:
                st.points.pop(key, None)
            st.values[key], st.units[key] = ev.value, ev.unit
            out.extend(self._evaluate(ev.site, ev, emitted_at))
        return out

    def _level_of(self, st: _SiteState, m: Member) -> tuple[int, float, str]:
        """(level rank, last value, unit) of a member."""
        if m.sensor is not None:
            key = m.label
            return st.points.get(key, 0), st.values.get(key, 0.0), st.units.get(key, "")
        if m.rule in st.rules:  # an earlier site rule
            return st.rules[m.rule][0], st.values.get(m.rule, 0.0), st.units.get(m.rule, "")
        best, key = 0, ""
        suffix = f"|{m.rule}"
        for k, rank in st.points.items():
            if k.endswith(suffix) and rank > best:
                best, key = rank, k
        return best, st.values.get(key, 0.0), st.units.get(key, "")

    def _evaluate(self, site_id: str, cause: WarningEvent, emitted_at: int) -> list[WarningEvent]:
        site, st = self.sites[site_id], self.state[site_id]
        out: list[WarningEvent] = []
        for rule in site.site_rules:
            level, value, threshold, detail = self._decide(st, rule)
            saved = st.rules.setdefault(rule.rule, [0, -1, 0])
            old = saved[0]
            if level == old:
                continue
            if old == 0:
                saved[1], saved[2] = cause.ts, 0
            saved[2] = max(saved[2], level)
            ev = WarningEvent(
                episode=episode_id(f"{site_id}/{rule.rule}", rule.rule, saved[1]), site=site_id,
                subject=f"{site_id}/{rule.rule}", rule=rule.rule, kind=event_kind(old, level),
                level=LEVELS[level], previous=LEVELS[old], ts=cause.ts, emitted_at=emitted_at,
                value=value, threshold=threshold, unit=detail.pop("unit", ""),
                detail={**detail, "peak": LEVELS[saved[2]], "raised_ts": saved[1], "site_rule": rule.kind,
                        "quantity": rule.name or rule.rule, "name_en": rule.name_en or rule.rule,
                        "cause": cause.subject + "|" + cause.rule},
            )
            saved[0] = level
            if level == 0:
                saved[1], saved[2] = -1, 0
            st.values[rule.rule], st.units[rule.rule] = value, ev.unit
            out.append(ev)
        return out

    def _decide(self, st: _SiteState, rule: VoteRule | AggregateRule | CompositeRule
                ) -> tuple[int, float, float | None, dict[str, Any]]:
        """(level rank, value, threshold, detail) of one site rule from the current levels."""
        if isinstance(rule, CompositeRule):
            held = {c.label: self._level_of(st, c)[0] >= _RANK[c.min_level] for c in [*rule.all_of, *rule.any_of]}
            ok = all(held[c.label] for c in rule.all_of) and (not rule.any_of or any(held[c.label] for c in rule.any_of))
            detail: dict[str, Any] = {"conditions": held}
            if not ok:
                return 0, 0.0, None, detail
            if rule.level is not None:
                return _RANK[rule.level], 1.0, None, detail
            assert rule.escalate is not None
            base, value, unit = self._level_of(st, rule.escalate)
            detail.update(escalates=rule.escalate.label, escalated_from=LEVELS[base], unit=unit)
            return (min(base + rule.by, len(LEVELS) - 1) if base else 0), value, None, detail
        ranks = [self._level_of(st, m)[0] for m in rule.members]
        members = {m.label: LEVELS[r] for m, r in zip(rule.members, ranks)}
        if isinstance(rule, VoteRule):
            # the highest level at or above which at least k members stand
            level = sorted(ranks, reverse=True)[rule.k - 1]
            count = sum(1 for r in ranks if level and r >= level)
            return level, float(count), float(rule.k), {"members": members, "k": rule.k, "n": len(ranks)}
        level, count = max(ranks, default=0), sum(1 for r in ranks if r)
        for n, at, to in _GB:
            at_or_above = sum(1 for r in ranks if r >= at)
            if at_or_above >= n and to > level:
                level, count = to, at_or_above
        return level, float(count), None, {"members": members, "method": rule.method}

    # -- state ----------------------------------------------------------------------------------
    def export_site(self, site: str) -> dict[str, Any]:
        st = self.state.get(site)
        if st is None:
            return {}
        return {"points": dict(st.points), "values": dict(st.values), "units": dict(st.units),
                "rules": {k: list(v) for k, v in st.rules.items()}}

    def import_site(self, site: str, saved: dict[str, Any]) -> None:
        if site not in self.sites:
            return
        self.state[site] = _SiteState(
            points={k: int(v) for k, v in saved.get("points", {}).items()},
            values={k: float(v) for k, v in saved.get("values", {}).items()},
            units={k: str(v) for k, v in saved.get("units", {}).items()},
            rules={k: [int(x) for x in v] for k, v in saved.get("rules", {}).items()},
        )
