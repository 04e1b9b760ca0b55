"""A small configuration and hand-built store rows for the indicator tests (coverage, safety index).

Two enterprises: 甲化工 with CH-A (zone Z-A, three subscribers; extra zone Z-B, one subscriber)
and CH-A2 (zone Z-A), 乙矿业 with TD-B (zone Z-C, no subscribers). Every site has two sensors.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from alerts.store import Episode, Notification
from config.models import Config, Settings

ENT_A, ENT_B = "甲化工", "乙矿业"
Z_A_PEOPLE = [("张三", "+8613700000001"), ("李四", "+8613700000002"), ("王五", "+8613700000003")]
Z_B_PEOPLE = [("赵六", "+8613700000004")]

_keys = itertools.count()


def _site(sid: str, enterprise: str, zone: str, extra: list[str], lon: float) -> dict[str, Any]:
    sensor = {"quantity": "combustible_gas", "unit": "%LEL", "period_s": 5,
              "thresholds": [{"rule": "gas", "ladder": [{"level": "red", "value": 50}]}]}
    return {"id": sid, "name": f"{sid}站", "name_en": f"{sid} site", "kind": "chemical", "enterprise": enterprise,
            "region": "360313", "lat": 27.6, "lon": lon, "zone": zone, "extra_zones": extra,
            "sensors": [{"id": "S1", **sensor}, {"id": "S2", **sensor}]}


def _zone(zid: str, people: list[tuple[str, str]], lon: float) -> dict[str, Any]:
    return {"id": zid, "name": f"{zid}区", "name_en": f"zone {zid}", "region": "360313",
            "circle": {"lat": 27.6, "lon": lon, "radius_km": 0.5},
            "subscribers": [{"name": n, "phone": p} for n, p in people]}


def small_config(**indicators: Any) -> Config:
    settings = Settings.model_validate({"sms": {"from_number": "+15005550006"},
                                        "indicators": indicators})
    return Config(settings=settings,
                  sites=[_site("CH-A", ENT_A, "Z-A", ["Z-B"], 113.0), _site("CH-A2", ENT_A, "Z-A", [], 113.01),
                         _site("TD-B", ENT_B, "Z-C", [], 114.0)],
                  zones=[_zone("Z-A", Z_A_PEOPLE, 113.0), _zone("Z-B", Z_B_PEOPLE, 113.5), _zone("Z-C", [], 114.0)],
                  recipients=[])


def episode(eid: str, site: str, peak: str, raised: dt.datetime, *, enterprise: str = ENT_A,
            rule: str = "gas", subject: str | None = None, **fields: Any) -> Episode:
    values: dict[str, Any] = {"state": "active", "false_alarm": False}
    values.update(fields)
    return Episode(id=eid, site=site, subject=subject or f"{site}/S1", rule=rule, kind="chemical",
                   enterprise=enterprise, level=peak, peak=peak, unit="%LEL",
                   raised_ts=int(raised.timestamp() * 1000), raised_at=raised, updated_at=raised, **values)


def note(eid: str, site: str, recipient: str, *, channel: str = "sms", kind: str = "raised",
         level: str = "red", status: str = "sent", delivery: str | None = None, provider_id: str | None = None,
         reason: str | None = None, error: str | None = None, created: dt.datetime) -> Notification:
    return Notification(key=f"k{next(_keys)}", channel=channel, episode=eid, site=site, kind=kind, level=level,
                        recipient=recipient, role="resident" if channel != "cap" else "residents",
                        language="zh-CN", event="{}", status=status, delivery_status=delivery,
                        provider_id=provider_id, suppressed_reason=reason, error=error,
                        created_at=created, not_before=created)
