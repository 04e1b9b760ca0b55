"""Checks that span files, run on the YAML as read, whether or not each file validated.

So a zone id typo in ``sites.yaml`` is reported together with, say, a bad phone number in
``recipients.yaml``, not only once that is fixed. What is checked:

- duplicate site ids, duplicate sensor ids within a site, a ``trend:`` rule on a sensor without a
  threshold rule (``sites.yaml``);
- duplicate zone ids (``zones.yaml``);
- a site's ``zone`` or ``extra_zones`` entry that ``zones.yaml`` does not define;
- an officer's ``enterprise`` that no site has, a regulator whose tier region holds no site
  (``recipients.yaml``).

A reference is checked only against a set that is known whole: when ``zones.yaml`` could not be
read, or one of its zones has no usable ``id``, zone references are not checked (that file's own
errors say why); the same for the sites' enterprises and regions. Values of the wrong type are
left to the file's own validation, which reports them.
"""

from __future__ import annotations

import re
from typing import Any

from config.models_base import ID_PATTERN
from config.notify import region_prefix

__all__ = ["cross_check"]

_REGION = re.compile(r"^\d{6}$")
_TIERS = ("county", "city", "province")


def _items(data: dict[str, Any] | None, key: str) -> list[dict[str, Any]] | None:
    """The mappings of ``data[key]`` (a non-mapping item counts as empty), None if unreadable."""
    if data is None:
        return None
    items = data.get(key, [])  # the models' default: no zones, no recipients (sites are required)
    if not isinstance(items, list):
        return None
    return [item if isinstance(item, dict) else {} for item in items]


def _known(items: list[dict[str, Any]] | None, key: str, valid: re.Pattern[str] | None = None) -> set[str] | None:
    """Every item's ``key``, or None unless every item has a usable one."""
    if items is None:
        return None
    values = [item.get(key) for item in items]
    if not all(isinstance(v, str) and (valid is None or valid.match(v)) for v in values):
        return None
    return set(values)


def _sites(sites: list[dict[str, Any]], zone_ids: set[str] | None) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    known = f"zones.yaml defines {sorted(zone_ids)}" if zone_ids is not None else ""
    seen: dict[str, int] = {}
    for i, site in enumerate(sites):
        sid = site.get("id")
        if isinstance(sid, str):
            if sid in seen:
                out.append(("sites.yaml", f"sites[{i}].id", f"duplicate site id {sid!r} (also sites[{seen[sid]}])"))
            seen.setdefault(sid, i)
        if zone_ids is not None:
            zone = site.get("zone")
            if isinstance(zone, str) and zone not in zone_ids:
                out.append(("sites.yaml", f"sites[{i}].zone", f"unknown zone {zone!r} ({known})"))
            extras = site.get("extra_zones")
            for k, extra in enumerate(extras if isinstance(extras, list) else []):
                if isinstance(extra, str) and extra not in zone_ids:
                    out.append(("sites.yaml", f"sites[{i}].extra_zones[{k}]", f"unknown zone {extra!r} ({known})"))
        sensors = site.get("sensors")
        sensor_seen: set[str] = set()
        for j, sensor in enumerate(sensors if isinstance(sensors, list) else []):
            if not isinstance(sensor, dict):
                continue
            xid = sensor.get("id")
            if isinstance(xid, str):
                if xid in sensor_seen:
                    out.append(("sites.yaml", f"sites[{i}].sensors[{j}].id", f"duplicate sensor id {xid!r} in site {sid}"))
                sensor_seen.add(xid)
            if sensor.get("trend") is not None and not sensor.get("thresholds"):
                out.append(("sites.yaml", f"sites[{i}].sensors[{j}].trend",
                            "a trend rule forecasts the next rung of the sensor's threshold rule: add a threshold rule"))
    return out


def _recipients(recipients: list[dict[str, Any]], enterprises: set[str] | None,
                regions: set[str] | None) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for i, r in enumerate(recipients):
        role, tier, region = r.get("role"), r.get("tier"), r.get("region")
        if (regions is not None and role == "regulator" and tier in _TIERS and isinstance(region, str)
                and _REGION.match(region) and not any(reg.startswith(region_prefix(region, tier)) for reg in regions)):
            out.append(("recipients.yaml", f"recipients[{i}].region",
                        f"no site lies in {tier} {region} (sites.yaml regions: {sorted(regions)})"))
        enterprise = r.get("enterprise")
        if enterprises is not None and role == "officer" and isinstance(enterprise, str) and enterprise \
                and enterprise not in enterprises:
            out.append(("recipients.yaml", f"recipients[{i}].enterprise",
                        f"no site belongs to enterprise {enterprise!r}"))
    return out


def cross_check(raw: dict[str, dict[str, Any] | None]) -> list[tuple[str, str, str]]:
    """``(file, path, reason)`` of every cross-file problem in ``raw``: file name -> its YAML
    mapping (after environment overrides), None when the file is missing or unreadable."""
    sites = _items(raw.get("sites.yaml"), "sites") or None  # none at all is the file's own error
    zones = _items(raw.get("zones.yaml"), "zones")
    recipients = _items(raw.get("recipients.yaml"), "recipients")
    out: list[tuple[str, str, str]] = []
    zone_ids = _known(zones, "id", re.compile(ID_PATTERN))
    if sites is not None:
        out += _sites(sites, zone_ids)
    if zones is not None:
        seen: set[str] = set()
        for i, zone in enumerate(zones):
            zid = zone.get("id")
            if isinstance(zid, str):
                if zid in seen:
                    out.append(("zones.yaml", f"zones[{i}].id", f"duplicate zone id {zid!r}"))
                seen.add(zid)
    if recipients is not None:
        out += _recipients(recipients, _known(sites, "enterprise"), _known(sites, "region", _REGION))
    return out
