"""Warnings: a configuration that loads, and still does not do what a monitoring centre expects.

:func:`config_warnings` looks at a validated :class:`~config.models.Config` and returns
:class:`~config.loader.ConfigIssue` s (file, path, reason) that are not errors: the services run
with them. ``hazwatch check-config`` prints them, and fails on them with ``--strict``.

- **A site whose red warnings reach no resident and no officer.** Routing decides who hears a
  warning (``config.notify``, applied by ``alerts/audience.py``): a red warning of the site reaches
  residents when a routing rule that matches red and the site's kind names ``residents`` and
  either a zone the site affects has subscribers (SMS) or the rule has the ``cap`` channel
  (loudspeakers); it reaches officers when such a rule names ``officers`` and ``recipients.yaml``
  has an officer of the site's enterprise. When only rules limited by ``hours`` or ``rules`` reach
  them, a red warning outside those is warned about too.
- **A threshold ladder that cannot fire within the sensor's physical ``range``**: a rung beyond the
  range can never be reached (a ``high`` rung above its maximum, a ``low`` rung below its minimum),
  and a rung at or beyond the other end is met by every reading.
- **A zone with no subscribers**: no resident there gets an SMS, whatever routing says.
- **No operator** in ``recipients.yaml``: the monitoring centre hears of nothing by SMS.
- **A 叫应 escalation step that reaches nobody**: for a site, no regulator of the step's tier
  covers the site's region, so an unanswered warning climbs to no one at that tier.

A routed channel whose settings are missing or incomplete is not a warning but an error
(``config.channel_checks``).
"""

from __future__ import annotations

from config.channel_registry import spec
from config.loader import ConfigIssue
from config.models import Config, Sensor, Site, ThresholdRule
from config.notify import RoutingRule, region_prefix

__all__ = ["config_warnings"]


def _red_rules(cfg: Config, site: Site) -> list[RoutingRule]:
    """The routing rules a red warning of ``site`` can match (at some hour, for some rule)."""
    return [r for r in cfg.settings.routing.rules
            if (r.match.levels is None or "red" in r.match.levels)
            and (r.match.site_kinds is None or site.kind in r.match.site_kinds)]


def _kind(channel: str) -> str:
    """A channel's kind, from the channel registry (``config.channel_registry``): ``sms`` reaches
    people by number, ``broadcast`` zones, ``group`` a chat group (counted as reaching the
    audience, so that a robot never causes a warning)."""
    return spec(channel).kind


def _reach(cfg: Config, site: Site, rule: RoutingRule) -> tuple[bool, bool]:
    """Whether ``rule`` reaches (residents, officers) of ``site``."""
    kinds = {_kind(c) for c in rule.channels}
    zones = cfg.affected_zones(site.id)
    residents = "residents" in rule.audiences and bool(
        kinds & {"broadcast", "group"}
        or ("sms" in kinds and any(cfg.zone(z).subscribers for z in zones)))
    officers = "officers" in rule.audiences and bool(
        "group" in kinds
        or ("sms" in kinds and any(r.role == "officer" and r.enterprise == site.enterprise
                                   for r in cfg.recipients)))
    return residents, officers


def _why_nobody(cfg: Config, site: Site, rules: list[RoutingRule]) -> str:
    reasons = []
    if not any("residents" in r.audiences for r in rules):
        reasons.append(f"no routing rule sends a red warning of a {site.kind} site to residents")
    else:
        zones = cfg.affected_zones(site.id)
        reasons.append(f"the zones it affects ({', '.join(zones)}) have no subscribers and no rule to "
                       "residents has the cap channel")
    if not any("officers" in r.audiences for r in rules):
        reasons.append("no routing rule sends it to officers")
    else:
        reasons.append(f"recipients.yaml has no officer of {site.enterprise!r}")
    return "; ".join(reasons)


def _site_warnings(cfg: Config, i: int, site: Site) -> list[ConfigIssue]:
    rules = _red_rules(cfg, site)
    reaching = [r for r in rules if any(_reach(cfg, site, r))]
    where = f"sites[{i}]"
    if not reaching:
        return [ConfigIssue("sites.yaml", where, f"red warnings of {site.id} reach no resident and no officer: "
                                                 f"{_why_nobody(cfg, site, rules)}")]
    if all(r.match.hours is not None or r.match.rules is not None for r in reaching):
        names = ", ".join(f"'{r.name}'" for r in reaching)
        return [ConfigIssue("sites.yaml", where,
                            f"red warnings of {site.id} reach residents or officers only through routing rules "
                            f"limited by hours or rule names ({names}): any other red warning reaches neither")]
    return []


def _rung(step_level: str, value: float, unit: str) -> str:
    return f"{step_level} {value:g} {unit}"


def _ladder_warnings(sensor: Sensor, where: str) -> list[ConfigIssue]:
    if sensor.range is None:
        return []
    lo, hi = sensor.range
    span = f"the sensor's range [{lo:g}, {hi:g}] {sensor.unit}"
    out: list[ConfigIssue] = []
    for k, rule in enumerate(sensor.thresholds):
        path = f"{where}.thresholds[{k}]"
        out += _rule_warnings(rule, lo, hi, span, sensor.unit, path)
    return out


def _rule_warnings(rule: ThresholdRule, lo: float, hi: float, span: str, unit: str, path: str) -> list[ConfigIssue]:
    high = rule.direction == "high"
    beyond = [s for s in rule.ladder if (s.value > hi if high else s.value < lo)]
    always = [s for s in rule.ladder if (s.value <= lo if high else s.value >= hi)]
    side, end = ("above", "maximum") if high else ("below", "minimum")
    out: list[ConfigIssue] = []
    if len(beyond) == len(rule.ladder):
        out.append(ConfigIssue("sites.yaml", path, f"threshold rule {rule.rule!r} can never fire: its first rung "
                                                   f"{_rung(rule.ladder[0].level, rule.ladder[0].value, unit)} "
                                                   f"lies {side} {span}"))
    elif beyond:
        rungs = ", ".join(_rung(s.level, s.value, unit) for s in beyond)
        out.append(ConfigIssue("sites.yaml", path, f"threshold rule {rule.rule!r}: {rungs} lie{'s' if len(beyond) == 1 else ''} "
                                                   f"{side} {span}: that level can never be reached"))
    if always:
        top = always[-1]
        other = "minimum" if end == "maximum" else "maximum"
        out.append(ConfigIssue("sites.yaml", path, f"threshold rule {rule.rule!r}: rung {_rung(top.level, top.value, unit)} "
                                                   f"is at or beyond the range's {other}: every reading raises "
                                                   f"at least {top.level}"))
    return out


def _escalation_warnings(cfg: Config, i: int, site: Site) -> list[ConfigIssue]:
    out: list[ConfigIssue] = []
    for tier in dict.fromkeys(step.tier for step in cfg.settings.notify.escalation.steps):
        if not any(r.role == "regulator" and r.tier == tier and r.region is not None
                   and site.region.startswith(region_prefix(r.region, tier)) for r in cfg.recipients):
            out.append(ConfigIssue("sites.yaml", f"sites[{i}].region",
                                   f"叫应 escalation to the {tier} tier reaches nobody for {site.id}: no {tier} "
                                   f"regulator in recipients.yaml covers region {site.region}"))
    return out


def config_warnings(cfg: Config) -> list[ConfigIssue]:
    """Every warning about ``cfg``, file by file (sites.yaml, zones.yaml, recipients.yaml)."""
    out: list[ConfigIssue] = []
    for i, site in enumerate(cfg.sites):
        out += _site_warnings(cfg, i, site)
        out += _escalation_warnings(cfg, i, site)
        for j, sensor in enumerate(site.sensors):
            out += _ladder_warnings(sensor, f"sites[{i}].sensors[{j}]")
    for i, zone in enumerate(cfg.zones):
        if not zone.subscribers:
            out.append(ConfigIssue("zones.yaml", f"zones[{i}].subscribers",
                                   f"zone {zone.id} has no subscribers: no resident there gets an SMS "
                                   "(CAP loudspeakers only)"))
    if not any(r.role == "operator" for r in cfg.recipients):
        out.append(ConfigIssue("recipients.yaml", "recipients", "no operator: the monitoring centre hears of no "
                                                                "warning by SMS"))
    return out
