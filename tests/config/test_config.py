"""Configuration: the example loads; every kind of bad configuration gives its exact error.

Each directory under ``tests/fixtures/bad_config/`` is a full copy of ``config/example/`` with one
defect (marked ``# DEFECT:`` on the changed line) and an ``expected.txt`` holding the exact
``FILE: PATH: REASON`` line(s) it must give (``str(ConfigIssue)``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from config.loader import ENV_OVERRIDES, ConfigError, ConfigIssue, example_dir, load_config
from hazwatch.cli import app

TESTS = Path(__file__).resolve().parents[1]
EXAMPLE = TESTS.parent / "config" / "example"
BAD = TESTS / "fixtures" / "bad_config"
FIXTURES = sorted(p for p in BAD.iterdir() if p.is_dir())

#: The kinds of error the fixtures must cover (STYLE.md 5: one fixture per kind).
REQUIRED_KINDS = {
    "yaml_syntax_error",
    "missing_sites_file",
    "unknown_top_level_key",
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
    "duplicate_site_id",
    "duplicate_sensor_id",
    "site_unknown_zone",
    "phone_not_e164",
    "officer_without_enterprise",
    "resident_without_zone",
    "resident_unknown_zone",
    "officer_enterprise_without_site",
    "negative_min_duration",
    "bad_routing_role",
    "non_finite_threshold",
}


def _expected(fixture: Path) -> list[str]:
    return (fixture / "expected.txt").read_text(encoding="utf-8").splitlines()


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
    assert [s.id for s in cfg.sites] == ["CH-001", "TD-001", "RG-001"]
    assert sum(len(s.sensors) for s in cfg.sites) == 10
    assert len(cfg.zones) == 3
    assert len(cfg.recipients) == 10
    assert cfg.sensor("TD-001", "PZ-01").thresholds[0].direction == "low"
    assert cfg.sensor("CH-001", "PZ-01") is None  # lookups are per site
    assert cfg.site("RG-001").zone == "Z-SHIQIAO-VALLEY"
    assert cfg.zone("Z-XIAHE-VILLAGE").circle.radius_km == 3.0


def test_example_dir_is_the_shipped_example() -> None:
    assert example_dir().resolve() == EXAMPLE.resolve()


def test_not_a_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert _issues(missing) == [f"{missing}: <root>: not a directory"]


# ------------------------------------------------------------------------------ bad configuration


def test_every_kind_of_error_has_a_fixture() -> None:
    assert REQUIRED_KINDS <= {p.name for p in FIXTURES}


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.name for p in FIXTURES])
def test_bad_config_gives_its_exact_error(fixture: Path) -> None:
    expected = _expected(fixture)
    assert expected, f"{fixture}/expected.txt is empty"
    assert _issues(fixture) == expected


def test_error_message_lists_every_issue() -> None:
    fixture = BAD / "latitude_out_of_range"
    with pytest.raises(ConfigError) as info:
        load_config(fixture, env={})
    assert info.value.directory == fixture
    assert str(info.value) == (
        f"invalid configuration in {fixture} (1 error(s)):\n  {_expected(fixture)[0]}"
    )


def test_issue_rendering() -> None:
    assert str(ConfigIssue("sites.yaml", "sites[0].lat", "too far north")) == (
        "sites.yaml: sites[0].lat: too far north"
    )
    assert (
        str(ConfigIssue("sites.yaml", "", "file is missing"))
        == "sites.yaml: <root>: file is missing"
    )


def _combine(tmp_path: Path, *sources: tuple[str, str]) -> Path:
    """The example with some files taken from single-defect fixtures: ``(fixture, file)``."""
    out = tmp_path / "config"
    shutil.copytree(EXAMPLE, out)
    for fixture, name in sources:
        shutil.copy(BAD / fixture / name, out / name)
    return out


def test_all_errors_are_reported_not_only_the_first(tmp_path: Path) -> None:
    directory = _combine(
        tmp_path,
        ("bad_routing_role", "hazwatch.yaml"),
        ("latitude_out_of_range", "sites.yaml"),
        ("phone_not_e164", "recipients.yaml"),
    )
    expected = [
        *_expected(BAD / "bad_routing_role"),
        *_expected(BAD / "latitude_out_of_range"),
        *_expected(BAD / "phone_not_e164"),
    ]
    assert _issues(directory) == expected


def test_all_cross_reference_errors_are_reported(tmp_path: Path) -> None:
    directory = _combine(
        tmp_path,
        ("site_unknown_zone", "sites.yaml"),
        ("resident_unknown_zone", "recipients.yaml"),
    )
    assert _issues(directory) == [
        *_expected(BAD / "site_unknown_zone"),
        *_expected(BAD / "resident_unknown_zone"),
    ]


def test_several_errors_in_one_file(tmp_path: Path) -> None:
    directory = _combine(tmp_path)
    sites = directory / "sites.yaml"
    text = sites.read_text(encoding="utf-8")
    text = text.replace('    region: "320582"\n', '    region: "32058"\n', 1)
    text = text.replace("        quantity: combustible_gas\n", "        quantity: methane\n", 1)
    sites.write_text(text, encoding="utf-8")
    issues = _issues(directory)
    assert issues[0] == _expected(BAD / "bad_region_code")[0]
    assert issues[1] == _expected(BAD / "unknown_quantity")[0]
    assert len(issues) == 2


def test_empty_and_non_mapping_files(tmp_path: Path) -> None:
    directory = _combine(tmp_path)
    (directory / "sites.yaml").write_text("", encoding="utf-8")
    (directory / "zones.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    assert _issues(directory) == [
        "sites.yaml: sites: Field required",
        "zones.yaml: <root>: must be a mapping, got list",
    ]


def test_zones_and_recipients_are_optional(tmp_path: Path) -> None:
    directory = _combine(tmp_path)
    (directory / "recipients.yaml").unlink()
    assert load_config(directory, env={}).recipients == []
    (directory / "zones.yaml").unlink()
    # Without zones every site's zone is unknown: reported, not silently accepted.
    assert _issues(directory)[0].startswith(
        "sites.yaml: sites[0].zone: unknown zone 'Z-LINGANG-EAST'"
    )


# ---------------------------------------------------------------------------------- command line


def test_check_config_reports_file_path_reason_and_exits_1(no_env_overrides: None) -> None:
    fixture = BAD / "latitude_out_of_range"
    result = CliRunner().invoke(app, ["check-config", str(fixture)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{fixture}/sites.yaml: sites[1].lat: Input should be less than or equal to 90",
        "1 error(s)",
    ]
    assert result.stdout == ""


def test_check_config_reports_every_error(tmp_path: Path, no_env_overrides: None) -> None:
    directory = _combine(
        tmp_path, ("bad_routing_role", "hazwatch.yaml"), ("phone_not_e164", "recipients.yaml")
    )
    result = CliRunner().invoke(app, ["check-config", str(directory)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"{directory}/hazwatch.yaml: routing.red[2]: ")
    assert lines[1].startswith(f"{directory}/recipients.yaml: recipients[1].phone: ")
    assert lines[2:] == ["2 error(s)"]


def test_check_config_missing_directory(tmp_path: Path, no_env_overrides: None) -> None:
    missing = tmp_path / "nope"
    result = CliRunner().invoke(app, ["check-config", str(missing)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == f"{missing}: <root>: not a directory"


def test_check_config_ok(no_env_overrides: None) -> None:
    result = CliRunner().invoke(app, ["check-config", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: 3 sites, 10 sensors, ")
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
