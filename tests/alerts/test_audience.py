"""Who hears what (issue 3): audiences, routing rules and quiet hours on the example configuration.

Every expectation is an exact list of addresses, in the order the routing table produces them.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts.audience import Target, in_window, members, quiet_until, route
from config import load_config
from config.models import Config
from config.notify import QuietHours, Recipient, Routing, RoutingMatch, RoutingRule
from formats.warning import EventKind, WarningEvent

SH = ZoneInfo("Asia/Shanghai")
CFG = load_config("config/example")

# The example configuration's people (config/example/recipients.yaml, zones.yaml).
OPS = ["+8613800000001", "+8613800000002"]  # 王磊, 陈静
OFFICER = {"CH-001": "+8613900000011", "TD-001": "+8613900000021", "RG-001": "+8613900000031"}
COUNTY = {"CH-001": "+8613600000101", "TD-001": "+8613600000201", "RG-001": "+8613600000301"}
# One city (萍乡市, 360300): a county regulator per site, one city and one province regulator for all.
CITY = {"CH-001": "+8613600000202", "TD-001": "+8613600000202", "RG-001": "+8613600000202"}
PROVINCE = {"CH-001": "+8613600000203", "TD-001": "+8613600000203", "RG-001": "+8613600000203"}
RESIDENTS = {
    # Z-LINGANG-EAST (张阿姨, John Smith) + Z-LINGANG-SCHOOL (钱红, within the 1.5 km hazard radius)
    "CH-001": ["+8613700000101", "+8613700000102", "+8613700000111"],
    "TD-001": ["+8613700000201", "+8613700000202"],  # Z-XIAHE-VILLAGE
    "RG-001": ["+8613700000301"],  # Z-SHIQIAO-VALLEY
}
ZONES = {"CH-001": ["Z-LINGANG-EAST", "Z-LINGANG-SCHOOL"], "TD-001": ["Z-XIAHE-VILLAGE"],
         "RG-001": ["Z-SHIQIAO-VALLEY"]}
RULE = {"CH-001": "combustible_gas", "TD-001": "phreatic_depth", "RG-001": "rain_1h"}
SENSOR = {"CH-001": "GT-101", "TD-001": "PZ-01", "RG-001": "RAIN-1H"}

DAY = datetime(2025, 11, 23, 14, 0, tzinfo=SH)


def event(site: str, level: str, kind: EventKind = "raised", *, previous: str = "normal",
          rule: str | None = None) -> WarningEvent:
    ts = int(DAY.timestamp() * 1000)
    return WarningEvent(
        episode=f"ep-{site}", site=site, subject=f"{site}/{SENSOR[site]}", rule=rule or RULE[site],
        kind=kind, level=level, previous=previous, ts=ts, emitted_at=ts, value=1.0, threshold=None,
        unit="m", detail={"peak": level},
    )


def with_routing(routing: Routing, config: Config = CFG) -> Config:
    return Config(settings=config.settings.model_copy(update={"routing": routing}),
                  sites=config.sites, zones=config.zones, recipients=config.recipients)


def sms(*pairs: tuple[str, list[str]]) -> list[tuple[str, str, str]]:
    return [("sms", addr, rule) for rule, addrs in pairs for addr in addrs]


def cap(site: str, rule: str = "residents-red") -> list[tuple[str, str, str]]:
    return [("cap", z, rule) for z in ZONES[site]]


def routed(config: Config, ev: WarningEvent, now: datetime = DAY) -> list[tuple[str, str, str]]:
    return [(t.channel, t.address, t.rule) for t in route(config, ev, now)]


# -- members --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("site", "audience", "expected"), [
    *[(s, "operators", OPS) for s in OFFICER],
    *[(s, "officers", [OFFICER[s]]) for s in OFFICER],
    *[(s, "regulators:county", [COUNTY[s]]) for s in OFFICER],
    *[(s, "regulators:city", [CITY[s]]) for s in OFFICER],
    *[(s, "regulators:province", [PROVINCE[s]]) for s in OFFICER],
    *[(s, "residents", RESIDENTS[s]) for s in OFFICER],
])
def test_members_sms(site: str, audience: str, expected: list[str]) -> None:
    got = members(CFG, CFG.site(site), audience, rule="r")
    assert [t.address for t in got] == expected
    assert {(t.channel, t.audience, t.rule) for t in got} == {("sms", audience, "r")}


@pytest.mark.parametrize("site", list(ZONES))
def test_members_cap_are_the_affected_zones(site: str) -> None:
    got = members(CFG, CFG.site(site), "residents", channel="cap")
    assert [(t.address, t.role) for t in got] == [(z, "zone") for z in ZONES[site]]


@pytest.mark.parametrize("audience", ["operators", "officers", "regulators:county"])
def test_members_cap_of_people_is_empty(audience: str) -> None:
    assert members(CFG, CFG.site("TD-001"), audience, channel="cap") == []


def test_members_carry_name_role_and_language() -> None:
    got = members(CFG, CFG.site("CH-001"), "residents")
    assert got[1] == Target("sms", "+8613700000102", "Resident John Smith", "resident", "en", "residents", "")
    county = members(CFG, CFG.site("TD-001"), "regulators:county")
    assert [(t.name, t.role, t.language) for t in county] == [("莲花县应急管理局值班室", "regulator", "zh-CN")]
    officer = members(CFG, CFG.site("TD-001"), "officers")
    assert [t.name for t in officer] == ["安全员赵敏（夏河矿业）"]


def test_regulator_tier_prefix_does_not_cross_provinces() -> None:
    # 萍乡 (3603) covers 芦溪 (360323) but not 株洲 (4302), nor 湖南's province (43) that of 江西 (36).
    others = [Recipient(name="株洲市应急管理局", phone="+8613600000402", role="regulator", tier="city",
                        region="430200"),
              Recipient(name="湖南省应急管理厅", phone="+8613600000403", role="regulator", tier="province",
                        region="430000")]
    cfg = Config(settings=CFG.settings, sites=CFG.sites, zones=CFG.zones, recipients=[*CFG.recipients, *others])
    assert [t.address for t in members(cfg, cfg.site("RG-001"), "regulators:city")] == [CITY["RG-001"]]
    assert [t.address for t in members(cfg, cfg.site("RG-001"), "regulators:province")] == [PROVINCE["RG-001"]]


@pytest.mark.parametrize(("audience", "channel"), [("regulators", "sms"), ("residents", "fax")])
def test_members_rejects_unknown(audience: str, channel: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        members(CFG, CFG.site("TD-001"), audience, channel=channel)


# -- route: the example routing table -------------------------------------------------------------


@pytest.mark.parametrize(("ev", "expected"), [
    pytest.param(event("TD-001", "red"), [
        *sms(("centre", OPS), ("enterprise", [OFFICER["TD-001"]]), ("county-red", [COUNTY["TD-001"]]),
             ("residents-red", RESIDENTS["TD-001"])),
        *cap("TD-001")], id="TD-001-red"),
    pytest.param(event("CH-001", "red"), [
        *sms(("centre", OPS), ("enterprise", [OFFICER["CH-001"]]), ("county-red", [COUNTY["CH-001"]]),
             ("residents-red", RESIDENTS["CH-001"])),
        *cap("CH-001")], id="CH-001-red-geo-targeted-school"),
    pytest.param(event("RG-001", "red"), [
        *sms(("centre", OPS), ("enterprise", [OFFICER["RG-001"]]), ("county-red", [COUNTY["RG-001"]]),
             ("residents-red", RESIDENTS["RG-001"])),
        *cap("RG-001")], id="RG-001-red"),
    pytest.param(event("RG-001", "orange"),
                 sms(("centre", OPS), ("enterprise", [OFFICER["RG-001"]]), ("torrent-prepare", RESIDENTS["RG-001"])),
                 id="RG-001-orange-torrent-prepare"),
    pytest.param(event("TD-001", "orange"), sms(("centre", OPS), ("enterprise", [OFFICER["TD-001"]])),
                 id="TD-001-orange-no-residents"),
    pytest.param(event("CH-001", "yellow"), sms(("centre", OPS), ("enterprise", [OFFICER["CH-001"]])),
                 id="CH-001-yellow"),
    pytest.param(event("RG-001", "blue"), sms(("centre", OPS)), id="RG-001-blue-centre-only"),
    pytest.param(event("RG-001", "red", "escalated", previous="orange"), [
        *sms(("centre", OPS), ("enterprise", [OFFICER["RG-001"]]), ("county-red", [COUNTY["RG-001"]]),
             ("residents-red", RESIDENTS["RG-001"])),
        *cap("RG-001")], id="escalated-routes-by-new-level"),
    pytest.param(event("TD-001", "orange", "deescalated", previous="red"),
                 sms(("centre", OPS), ("enterprise", [OFFICER["TD-001"]])), id="deescalated-routes-by-new-level"),
    pytest.param(event("TD-001", "normal", "cleared", previous="red"), [], id="cleared-goes-to-who-heard"),
])
def test_route_example(ev: WarningEvent, expected: list[tuple[str, str, str]]) -> None:
    assert routed(CFG, ev) == expected


def test_route_dedups_by_channel_and_address_keeping_first_rule() -> None:
    config = with_routing(Routing(rules=[
        RoutingRule(name="first", audiences=["operators"]),
        RoutingRule(name="second", audiences=["operators", "officers"]),
        RoutingRule(name="third", audiences=["residents"], channels=["cap", "sms"]),
        RoutingRule(name="fourth", audiences=["residents"], channels=["sms", "cap"]),
    ]))
    assert routed(config, event("TD-001", "orange")) == [
        *sms(("first", OPS), ("second", [OFFICER["TD-001"]])),
        *cap("TD-001", "third"),
        *sms(("third", RESIDENTS["TD-001"])),
    ]


@pytest.mark.parametrize(("match", "site", "hit"), [
    (RoutingMatch(rules=["phreatic_depth"]), "TD-001", True),
    (RoutingMatch(rules=["freeboard"]), "TD-001", False),
    (RoutingMatch(site_kinds=["tailings", "rain"]), "TD-001", True),
    (RoutingMatch(site_kinds=["chemical"]), "TD-001", False),
    (RoutingMatch(levels=["orange"], site_kinds=["tailings"], rules=["phreatic_depth"]), "TD-001", True),
    (RoutingMatch(levels=["red"], site_kinds=["tailings"], rules=["phreatic_depth"]), "TD-001", False),
])
def test_route_match_fields(match: RoutingMatch, site: str, hit: bool) -> None:
    config = with_routing(Routing(rules=[RoutingRule(name="only", match=match, audiences=["officers"])]))
    assert routed(config, event(site, "orange")) == (sms(("only", [OFFICER[site]])) if hit else [])


NIGHT = RoutingRule(name="night-city", match=RoutingMatch(levels=["orange", "red"], hours=("20:00", "08:00")),
                    audiences=["regulators:city"])
DAYTIME = RoutingRule(name="day-county", match=RoutingMatch(hours=("08:00", "20:00")),
                      audiences=["regulators:county"])


@pytest.mark.parametrize(("local", "expected"), [
    ((7, 59, 59), sms(("night-city", [CITY["TD-001"]]))),
    ((8, 0, 0), sms(("day-county", [COUNTY["TD-001"]]))),
    ((19, 59, 0), sms(("day-county", [COUNTY["TD-001"]]))),
    ((20, 0, 0), sms(("night-city", [CITY["TD-001"]]))),
    ((23, 59, 0), sms(("night-city", [CITY["TD-001"]]))),
    ((0, 0, 0), sms(("night-city", [CITY["TD-001"]]))),
    ((3, 30, 0), sms(("night-city", [CITY["TD-001"]]))),
])
def test_route_hours_wrap_midnight(local: tuple[int, int, int], expected: list[tuple[str, str, str]]) -> None:
    config = with_routing(Routing(rules=[NIGHT, DAYTIME]))
    now = datetime(2025, 11, 23, *local, tzinfo=SH)
    assert routed(config, event("TD-001", "orange"), now) == expected


def test_route_hours_use_configured_timezone_not_the_clocks() -> None:
    config = with_routing(Routing(rules=[NIGHT, DAYTIME]))
    # 12:30 UTC is 20:30 in Asia/Shanghai: night.
    now = datetime(2025, 11, 23, 12, 30, tzinfo=UTC)
    assert routed(config, event("TD-001", "red"), now) == sms(("night-city", [CITY["TD-001"]]))


@pytest.mark.parametrize(("start", "end", "local", "routing_hit", "quiet_hit"), [
    ("20:00", "08:00", time(19, 59), False, False),
    ("20:00", "08:00", time(20, 0), True, True),
    ("20:00", "08:00", time(7, 59, 59, 999999), True, True),
    ("20:00", "08:00", time(8, 0), False, False),
    ("08:00", "20:00", time(8, 0), True, True),
    ("08:00", "20:00", time(20, 0), False, False),
    # Equal bounds (the configuration rejects them; in_window stays total): read so as to deliver.
    ("06:00", "06:00", time(6, 0), True, False),
    ("06:00", "06:00", time(18, 0), True, False),
])
def test_in_window(start: str, end: str, local: time, routing_hit: bool, quiet_hit: bool) -> None:
    assert in_window(local, start, end, equal_is_all_day=True) is routing_hit
    assert in_window(local, start, end, equal_is_all_day=False) is quiet_hit


def test_route_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="aware"):
        route(CFG, event("TD-001", "red"), datetime(2025, 11, 23, 14, 0))


# -- quiet hours (22:00-07:00 for residents in the example) ---------------------------------------


def resident(site: str = "RG-001") -> Target:
    return next(t for t in route(CFG, event(site, "orange"), DAY) if t.role == "resident")


@pytest.mark.parametrize(("now", "level", "expected"), [
    pytest.param(datetime(2025, 11, 23, 23, 0, tzinfo=SH), "yellow", datetime(2025, 11, 24, 7, 0, tzinfo=SH),
                 id="23:00-yellow-waits-till-07:00-next-day"),
    pytest.param(datetime(2025, 11, 23, 22, 0, tzinfo=SH), "yellow", datetime(2025, 11, 24, 7, 0, tzinfo=SH),
                 id="22:00-start-is-quiet"),
    pytest.param(datetime(2025, 11, 23, 21, 59, 59, tzinfo=SH), "yellow", None, id="21:59:59-not-quiet"),
    pytest.param(datetime(2025, 11, 24, 0, 30, tzinfo=SH), "yellow", datetime(2025, 11, 24, 7, 0, tzinfo=SH),
                 id="after-midnight-ends-same-day"),
    pytest.param(datetime(2025, 11, 24, 6, 59, 59, tzinfo=SH), "blue", datetime(2025, 11, 24, 7, 0, tzinfo=SH),
                 id="06:59:59-still-quiet"),
    pytest.param(datetime(2025, 11, 24, 7, 0, tzinfo=SH), "yellow", None, id="07:00-end-is-not-quiet"),
    pytest.param(datetime(2025, 11, 23, 23, 0, tzinfo=SH), "red", None, id="never-red"),
    pytest.param(datetime(2025, 11, 23, 15, 0, tzinfo=UTC), "yellow", datetime(2025, 11, 24, 7, 0, tzinfo=SH),
                 id="utc-now-15:00Z-is-23:00-local"),
    pytest.param(datetime(2025, 11, 23, 23, 0, tzinfo=SH), "orange", None,
                 id="23:00-orange-is-not-held-by-default-(torrent-prepare-to-evacuate)"),
])
def test_quiet_until_resident(now: datetime, level: str, expected: datetime | None) -> None:
    got = quiet_until(CFG, resident(), level, now)
    assert got == expected
    if got is not None:
        assert got.utcoffset() == timedelta(hours=8)


def test_quiet_hours_never_hold_the_torrent_prepare_to_evacuate_sms() -> None:
    # orange at a rain gauge is 准备转移 for the villagers: the example's quiet hours hold only
    # blue and yellow, so it goes out at 23:00 like every other audience's message
    at_23 = datetime(2025, 11, 23, 23, 0, tzinfo=SH)
    held = {t.address: quiet_until(CFG, t, "orange", at_23) for t in route(CFG, event("RG-001", "orange"), at_23)}
    assert held == {OPS[0]: None, OPS[1]: None, OFFICER["RG-001"]: None, RESIDENTS["RG-001"][0]: None}


def test_quiet_hours_never_hold_red_of_any_audience() -> None:
    at_23 = datetime(2025, 11, 23, 23, 0, tzinfo=SH)
    targets = route(CFG, event("CH-001", "red"), at_23)
    assert {t.role for t in targets} == {"operator", "officer", "regulator", "resident", "zone"}
    assert [quiet_until(CFG, t, "red", at_23) for t in targets] == [None] * len(targets)


@pytest.mark.parametrize(("quiet", "expected"), [
    (None, None),
    (QuietHours(start="22:00", end="07:00", audiences=["operators"]), None),
    (QuietHours(start="21:00", end="23:30", audiences=["residents"], levels=["orange"]),
     datetime(2025, 11, 23, 23, 30, tzinfo=SH)),
    (QuietHours(start="21:00", end="23:30", audiences=["residents"]), None),  # orange not held by default
])
def test_quiet_hours_configurations(quiet: QuietHours | None, expected: datetime | None) -> None:
    config = with_routing(Routing(rules=CFG.settings.routing.rules, quiet_hours=quiet))
    assert quiet_until(config, resident(), "orange", datetime(2025, 11, 23, 23, 0, tzinfo=SH)) == expected
