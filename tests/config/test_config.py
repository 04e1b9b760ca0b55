"""Configuration: the example loads; every kind of bad configuration gives its exact error.

Each file ``tests/fixtures/bad_config/<case>.yaml`` is one kind of bad configuration: an edit of one
file of ``config/example/`` and the exact ``FILE: PATH: REASON`` line(s) it must give
(``str(ConfigIssue)``). ``tests/config/fixtures.py`` applies it to a fresh copy of the example.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from shapely.geometry import Polygon
from typer.testing import CliRunner

from config.loader import ENV_OVERRIDES, ConfigError, ConfigIssue, example_dir, load_config
from config.models import zone_shape
from config.notify import Escalation, QuietHours, RoutingMatch, region_prefix
from hazwatch.cli import app
from tests.config.fixtures import (
    BAD_CONFIG,
    EXAMPLE,
    BadConfigCase,
    FixtureDoesNotApply,
    case_names,
    load_case,
    materialise,
)

CASES = case_names()

#: The kinds of error the fixtures must cover (one fixture per kind).
REQUIRED_KINDS = {
    # any file
    "yaml_syntax_error",
    "missing_sites_file",
    "unknown_top_level_key",
    # sites.yaml
    "bad_site_id",
    "bad_region_code",
    "latitude_out_of_range",
    "unknown_quantity",
    "unit_not_of_quantity",
    "period_not_positive",
    "ladder_out_of_order",
    "ladder_not_increasing_high",
    "ladder_not_decreasing_low",
    "deadband_not_below_gap",
    "negative_min_duration",
    "non_finite_threshold",
    "duplicate_site_id",
    "duplicate_sensor_id",
    "site_unknown_zone",
    "site_unknown_extra_zone",
    "hazard_radius_too_large",
    # zones.yaml: one area per zone, checked polygons, subscribers (the v1 residents)
    "zone_without_area",
    "zone_with_two_areas",
    "polygon_not_closed",
    "polygon_self_intersecting",
    "polygon_too_many_vertices",
    "subscriber_phone_not_e164",
    "subscriber_unknown_language",
    # recipients.yaml: operators, officers, regulators
    "phone_not_e164",
    "resident_as_recipient",
    "officer_without_enterprise",
    "officer_enterprise_without_site",
    "regulator_without_tier",
    "regulator_region_not_of_tier",
    "regulator_region_without_site",
    # hazwatch.yaml: routing and notify
    "routing_unknown_audience",
    "routing_bad_hours",
    "routing_hours_empty",
    "quiet_hours_not_quoted",
    "quiet_hours_empty",
    "escalation_steps_out_of_order",
    "escalation_tiers_out_of_order",
}


def _expected(case: str) -> list[str]:
    return list(load_case(case).expect)


def _issues(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory, env={})
    return [str(i) for i in info.value.issues]


@pytest.fixture
def no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the process environment; keep a developer's or CI's settings out of it."""
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)


# ------------------------------------------------------------------------------------ the example


def test_example_loads() -> None:
    cfg = load_config(EXAMPLE, env={})
    # one city, 萍乡市: the three sites the scenarios drive first, then the rest of the city
    assert [s.id for s in cfg.sites] == ["CH-001", "TD-001", "RG-001", "CH-002", "CH-003", "CH-004", "TD-002",
                                         "TD-003", *(f"RG-00{i}" for i in range(2, 10))]
    assert {s.kind: sum(x.kind == s.kind for x in cfg.sites) for s in cfg.sites} == {
        "chemical": 4, "tailings": 3, "rain": 9}
    assert len({s.enterprise for s in cfg.sites if s.kind == "chemical"}) == 4  # one chemical park, four enterprises
    assert {s.region for s in cfg.sites} == {"360302", "360313", "360321", "360322", "360323"}
    assert sum(len(s.sensors) for s in cfg.sites) == 32
    assert [z.id for z in cfg.zones][:4] == [
        "Z-LINGANG-EAST",
        "Z-LINGANG-SCHOOL",
        "Z-XIAHE-VILLAGE",
        "Z-SHIQIAO-VALLEY",
    ]
    assert len(cfg.zones) == 15 and all(z.subscribers for z in cfg.zones)
    assert len(cfg.recipients) == 22
    assert [r.role for r in cfg.recipients].count("regulator") == 7
    assert {s.enterprise for s in cfg.sites} == {r.enterprise for r in cfg.recipients if r.role == "officer"}
    assert sum(len(z.subscribers) for z in cfg.zones) == 21
    assert cfg.sensor("RG-009", "RAIN-5M").rain == cfg.sensor("RG-001", "RAIN-5M").rain  # one table (YAML anchor)
    assert cfg.zone("Z-LINGANG-EAST").subscribers[1].language == "en"
    assert cfg.sensor("TD-001", "PZ-01").thresholds[0].direction == "low"
    assert cfg.sensor("CH-001", "PZ-01") is None  # lookups are per site
    assert cfg.site("RG-001").zone == "Z-SHIQIAO-VALLEY"
    assert cfg.zone("Z-XIAHE-VILLAGE").circle.radius_km == 3.0
    assert cfg.zone("Z-XIAHE-VILLAGE").polygon is None
    assert cfg.zone("Z-LINGANG-EAST").circle is None


def test_example_routing_and_notify() -> None:
    settings = load_config(EXAMPLE, env={}).settings
    assert [r.name for r in settings.routing.rules] == [
        "centre",
        "enterprise",
        "county-red",
        "residents-red",
        "torrent-prepare",
    ]
    torrent = settings.routing.rules[4]
    assert torrent.match.levels == ["orange"] and torrent.match.site_kinds == ["rain"]
    assert torrent.match.hours is None and torrent.channels == ["sms"]  # omitted: any time, SMS
    assert settings.routing.rules[3].channels == ["sms", "cap"]
    quiet = QuietHours(start="22:00", end="07:00", audiences=["residents"])
    assert settings.routing.quiet_hours == quiet
    notify = settings.notify
    assert notify.group_wait_s == 30 and notify.sms_timeout_s == 10
    assert (notify.rate_limit.max_per_recipient, notify.rate_limit.window_h) == (50, 24)
    assert notify.rate_limit.red_reserve == 5
    assert notify.escalation.min_level == "orange"
    assert [(s.tier, s.after_min) for s in notify.escalation.steps] == [
        ("county", 10),
        ("city", 20),
        ("province", 30),
    ]
    assert notify.escalation.red_reminder_every_min == 5
    assert notify.http.port == 8090


def test_every_site_has_a_regulator_of_every_tier() -> None:
    """The example must be able to show the whole 叫应 chain for any site."""
    cfg = load_config(EXAMPLE, env={})
    for site in cfg.sites:
        tiers = {
            r.tier
            for r in cfg.recipients
            if r.role == "regulator" and site.region.startswith(region_prefix(r.region, r.tier))
        }
        assert tiers == {"county", "city", "province"}, site.id


def test_region_prefix() -> None:
    assert region_prefix("320582", "county") == "320582"
    assert region_prefix("320582", "city") == "3205"
    assert region_prefix("320582", "province") == "32"


def test_example_dir_is_the_shipped_example() -> None:
    assert example_dir().resolve() == EXAMPLE.resolve()


def test_not_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert _issues(missing) == [f"{missing}: <root>: not a directory"]


# ------------------------------------------------------------------------------- zones and areas


def test_polygon_zone_shape() -> None:
    zone = load_config(EXAMPLE, env={}).zone("Z-LINGANG-EAST")
    assert zone.circle is None
    assert zone.polygon.type == "Polygon"
    ring = zone.polygon.coordinates[0]
    assert len(ring) == 5 and ring[0] == ring[-1] == (113.742, 27.631)  # closed, [lon, lat]
    shape = zone_shape(zone)
    assert isinstance(shape, Polygon) and shape.is_valid
    assert shape.bounds == pytest.approx((113.742, 27.631, 113.756, 27.642))
    assert shape.area == pytest.approx(0.014 * 0.011)


def test_circle_zone_shape() -> None:
    zone = load_config(EXAMPLE, env={}).zone("Z-XIAHE-VILLAGE")
    minx, miny, maxx, maxy = zone_shape(zone).bounds
    assert (maxy - miny) / 2 * 111.32 == pytest.approx(3.0, rel=1e-3)  # north-south radius, km
    assert (minx + maxx) / 2 == pytest.approx(113.9962)
    assert maxx - minx > maxy - miny  # a degree of longitude is shorter than one of latitude


def test_affected_zones_by_hazard_radius() -> None:
    cfg = load_config(EXAMPLE, env={})
    # CH-001's own zone first, then the school 0.6 km away through hazard_radius_km: 1.5.
    assert cfg.affected_zones("CH-001") == ["Z-LINGANG-EAST", "Z-LINGANG-SCHOOL"]
    assert "Z-XIAHE-VILLAGE" not in cfg.affected_zones("CH-001")
    assert cfg.affected_zones("TD-001") == ["Z-XIAHE-VILLAGE"]  # no hazard radius: its zone only
    assert cfg.affected_zones("RG-001") == ["Z-SHIQIAO-VALLEY"]


def test_affected_zones_extra_and_smaller_radius(tmp_path: Path) -> None:
    directory = _combine(tmp_path)
    sites = directory / "sites.yaml"
    text = sites.read_text(encoding="utf-8")
    edits = {
        # the school's edge is 0.58 km from CH-001
        "    hazard_radius_km: 1.5 ": "    hazard_radius_km: 0.5 ",
        "    zone: Z-XIAHE-VILLAGE ": (
            "    extra_zones: [Z-SHIQIAO-VALLEY, Z-XIAHE-VILLAGE, Z-SHIQIAO-VALLEY]\n"
            "    zone: Z-XIAHE-VILLAGE "
        ),
    }
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    sites.write_text(text, encoding="utf-8")
    cfg = load_config(directory, env={})
    assert cfg.affected_zones("CH-001") == ["Z-LINGANG-EAST"]
    assert cfg.affected_zones("TD-001") == ["Z-XIAHE-VILLAGE", "Z-SHIQIAO-VALLEY"]  # each zone once


# --------------------------------------------------------------------- times of day and escalation


_HHMM = "time of day must be HH:MM from 00:00 to 23:59"


@pytest.mark.parametrize("hours", [("20:00", "08:00"), ("00:00", "23:59"), ("07:30", "09:00")])
def test_routing_hours_accepted(hours: tuple[str, str]) -> None:
    assert RoutingMatch(hours=hours).hours == hours


@pytest.mark.parametrize(
    ("hours", "reason"),
    [
        (("8:00", "20:00"), f"{_HHMM}, got '8:00'"),
        (("20:00", "24:00"), f"{_HHMM}, got '24:00' (midnight is 00:00)"),
        ((1200, "08:00"), "in quotes: YAML reads an unquoted 20:00 as the number 1200"),
        ((8, "20:00"), f"{_HHMM}, got 8"),
        (("08:00", "08:00"), "hours start and end at the same time (08:00), which is ambiguous"),
    ],
)
def test_routing_hours_rejected(hours: tuple[object, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(reason)):
        RoutingMatch(hours=hours)


def test_escalation_may_skip_a_tier_or_be_empty() -> None:
    steps = [{"tier": "county", "after_min": 10}, {"tier": "province", "after_min": 15}]
    assert [s.tier for s in Escalation(steps=steps).steps] == ["county", "province"]
    assert Escalation(steps=[]).steps == []


def test_escalation_steps_need_distinct_times() -> None:
    steps = [{"tier": "county", "after_min": 10}, {"tier": "city", "after_min": 10}]
    with pytest.raises(ValidationError, match=r"strictly increasing after_min, got \[10, 10\]"):
        Escalation(steps=steps)


# ------------------------------------------------------------------------------ bad configuration


def test_every_kind_of_error_has_a_fixture() -> None:
    assert REQUIRED_KINDS <= set(CASES)


def test_bad_config_holds_only_case_files() -> None:
    """No leftover full copies of the example: every kind is one ``<case>.yaml``."""
    assert sorted(p.name for p in BAD_CONFIG.iterdir()) == [f"{name}.yaml" for name in CASES]


@pytest.mark.parametrize("name", CASES)
def test_bad_config_gives_its_exact_error(name: str, tmp_path: Path) -> None:
    case = load_case(name)
    assert case.expect, f"{name}: expect is empty"
    assert _issues(materialise(tmp_path / "config", case)) == list(case.expect)


def test_a_case_that_no_longer_applies_fails_loudly(tmp_path: Path) -> None:
    """An example edited under a case is reported, not silently tested unchanged."""
    drifted = BadConfigCase(
        name="drifted",
        description="old text the example no longer has",
        file="sites.yaml",
        expect=("sites.yaml: sites[0].lat: whatever",),
        old="    lat: 99.0000\n",
        new="    lat: 199.0000\n",
    )
    with pytest.raises(FixtureDoesNotApply, match=r"fixture drifted no longer applies: .* 0 times"):
        materialise(tmp_path / "a", drifted)
    twice = BadConfigCase(
        name="twice",
        description="old text the example has more than once",
        file="sites.yaml",
        expect=("sites.yaml: sites[0].sensors[0].range: whatever",),
        old="range: [0, 100]",
        new="range: [100, 0]",
    )
    with pytest.raises(FixtureDoesNotApply, match=r"fixture twice no longer applies: .* 2 times"):
        materialise(tmp_path / "b", twice)


def test_error_message_lists_every_issue(tmp_path: Path) -> None:
    directory = _combine(tmp_path, "latitude_out_of_range")
    with pytest.raises(ConfigError) as info:
        load_config(directory, env={})
    assert info.value.directory == directory
    assert str(info.value) == (
        f"invalid configuration in {directory} (1 error(s)):\n"
        f"  {_expected('latitude_out_of_range')[0]}"
    )


def test_issue_rendering() -> None:
    assert str(ConfigIssue("sites.yaml", "sites[0].lat", "too far north")) == (
        "sites.yaml: sites[0].lat: too far north"
    )
    assert (
        str(ConfigIssue("sites.yaml", "", "file is missing"))
        == "sites.yaml: <root>: file is missing"
    )


def _combine(tmp_path: Path, *cases: str) -> Path:
    """The example with the defects of some bad-configuration cases, applied in order."""
    return materialise(tmp_path / "config", *(load_case(name) for name in cases))


def test_all_errors_are_reported_not_only_the_first(tmp_path: Path) -> None:
    directory = _combine(
        tmp_path,
        "routing_unknown_audience",  # hazwatch.yaml
        "latitude_out_of_range",  # sites.yaml
        "polygon_self_intersecting",  # zones.yaml
        "phone_not_e164",  # recipients.yaml
    )
    expected = [
        *_expected("routing_unknown_audience"),
        *_expected("latitude_out_of_range"),
        *_expected("polygon_self_intersecting"),
        *_expected("phone_not_e164"),
    ]
    assert _issues(directory) == expected


def test_all_cross_reference_errors_are_reported(tmp_path: Path) -> None:
    directory = _combine(
        tmp_path,
        "site_unknown_extra_zone",
        "regulator_region_without_site",
        "officer_enterprise_without_site",  # the same file: both edits apply
    )
    assert _issues(directory) == [
        *_expected("site_unknown_extra_zone"),
        *_expected("officer_enterprise_without_site"),  # recipients[4]
        *_expected("regulator_region_without_site"),  # recipients[11]
    ]


def test_several_errors_in_one_file(tmp_path: Path) -> None:
    directory = _combine(tmp_path, "bad_region_code", "unknown_quantity")  # both in sites.yaml
    issues = _issues(directory)
    assert issues[0] == _expected("bad_region_code")[0]
    assert issues[1] == _expected("unknown_quantity")[0]
    assert len(issues) == 2


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    directory = _combine(tmp_path)
    (directory / "sites.yaml").write_text("", encoding="utf-8")
    (directory / "zones.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    assert _issues(directory) == [
        "sites.yaml: sites: missing required key `sites`",
        "zones.yaml: <root>: must be a mapping, got list",
    ]


def test_zones_and_recipients_are_required_and_may_be_empty(tmp_path: Path) -> None:
    directory = _combine(tmp_path)
    (directory / "recipients.yaml").unlink()
    # A missing recipients.yaml would notify nobody: an error, not "OK ... 0 recipients".
    assert _issues(directory) == [
        ("recipients.yaml: <root>: file is missing: nobody would be notified, no operator, officer or "
         "regulator (write `recipients: []` to run without any)")
    ]
    (directory / "recipients.yaml").write_text("recipients: []\n", encoding="utf-8")
    assert load_config(directory, env={}).recipients == []  # said on purpose: loads
    (directory / "zones.yaml").unlink()
    # Without the file the sites' zones cannot be checked: the one error is the missing file.
    assert _issues(directory) == [
        ("zones.yaml: <root>: file is missing: every site names its zone there "
         "(write `zones: []` for a configuration without zones)")
    ]
    (directory / "zones.yaml").write_text("", encoding="utf-8")
    # An empty file is no zones: every site's zone is unknown, reported, not silently accepted.
    assert _issues(directory)[0].startswith("sites.yaml: sites[0].zone: unknown zone 'Z-LINGANG-EAST'")


# ---------------------------------------------------------------------------------- command line


def test_check_config_reports_file_path_reason_and_exits_2(
    tmp_path: Path, no_env_overrides: None
) -> None:
    directory = _combine(tmp_path, "latitude_out_of_range")
    result = CliRunner().invoke(app, ["check-config", str(directory)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{directory}/sites.yaml: sites[1].lat: out of range: must be at most 90, got 127.18",
        "1 error(s)",
    ]
    assert result.stdout == ""


def test_check_config_reports_every_error(tmp_path: Path, no_env_overrides: None) -> None:
    directory = _combine(tmp_path, "routing_unknown_audience", "phone_not_e164")
    result = CliRunner().invoke(app, ["check-config", str(directory)])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{directory}/hazwatch.yaml: routing.rules[2].audiences[0]: ")
    assert lines[1].startswith(f"{directory}/recipients.yaml: recipients[1].phone: ")
    assert lines[2:] == ["2 error(s)"]


def test_check_config_missing_directory(tmp_path: Path, no_env_overrides: None) -> None:
    missing = tmp_path / "nope"
    result = CliRunner().invoke(app, ["check-config", str(missing)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"{missing}: <root>: not a directory"


def test_check_config_ok(no_env_overrides: None) -> None:
    result = CliRunner().invoke(app, ["check-config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: 16 sites, 32 sensors, ")
    assert result.stdout.rstrip().endswith(", 15 zones, 22 recipients")
    assert result.stderr == ""


# --------------------------------------------------------------------------- environment overrides


def test_env_overrides_apply() -> None:
    env = {
        "HAZWATCH_MQTT_URL": "mqtt://mosquitto:1883",
        "HAZWATCH_KAFKA_BOOTSTRAP": "kafka:29092",
        "HAZWATCH_DATABASE_URL": "postgresql://hazwatch@db/hazwatch",
        "HAZWATCH_TWILIO_BASE_URL": "http://127.0.0.1:8081",
        "TWILIO_ACCOUNT_SID": "AC11111111111111111111111111111111",
        "TWILIO_AUTH_TOKEN": "s3cret-token",
    }
    settings = load_config(EXAMPLE, env=env).settings
    assert settings.mqtt.url == "mqtt://mosquitto:1883"
    assert settings.kafka.bootstrap == "kafka:29092"
    assert settings.database.url == "postgresql://hazwatch@db/hazwatch"
    assert settings.sms.base_url == "http://127.0.0.1:8081"
    assert settings.sms.account_sid == "AC11111111111111111111111111111111"
    assert settings.sms.auth_token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" not in repr(settings) and "s3cret-token" not in str(settings)
    assert (
        settings.sms.from_number == "+8610690000110"
    )  # what no variable names stays as in the file


def test_without_env_the_file_values_stay() -> None:
    settings = load_config(EXAMPLE, env={"HAZWATCH_KAFKA_BOOTSTRAP": ""}).settings
    assert settings.kafka.bootstrap == "127.0.0.1:9092"  # an empty variable does not override
    assert settings.sms.base_url is None
    assert settings.sms.auth_token.get_secret_value() == "dev-token"


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAZWATCH_KAFKA_BOOTSTRAP", "from-os-environ:9092")
    assert load_config(EXAMPLE).settings.kafka.bootstrap == "from-os-environ:9092"


def test_env_override_of_a_missing_section(tmp_path: Path) -> None:
    directory = _combine(tmp_path)
    text = (directory / "hazwatch.yaml").read_text(encoding="utf-8")
    (directory / "hazwatch.yaml").write_text(
        text.replace("kafka:\n  bootstrap: 127.0.0.1:9092\n", "")
    )
    settings = load_config(directory, env={"HAZWATCH_KAFKA_BOOTSTRAP": "kafka:29092"}).settings
    assert settings.kafka.bootstrap == "kafka:29092"


# ---------------------------------------------------------------------------------------- frozen


def test_config_is_frozen() -> None:
    cfg = load_config(EXAMPLE, env={})
    with pytest.raises(ValidationError, match="frozen"):
        cfg.settings.kafka.bootstrap = "elsewhere:9092"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        cfg.sites[0].sensors[0].thresholds[0].deadband = 0.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        cfg.settings = cfg.settings  # type: ignore[misc]
