"""Errors in the operator's terms (config/errors.py) and every error at once (config/crossref.py).

Each test edits a fresh copy of the example and asserts the exact ``FILE: PATH: REASON`` lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError, load_config
from tests.config.fixtures import load_case, materialise


def _edit(directory: Path, name: str, old: str, new: str) -> None:
    path = directory / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def _issues(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory, env={})
    return [str(i) for i in info.value.issues]


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return materialise(tmp_path / "config")


# ------------------------------------------------------------------------------ operator's terms


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    # unknown key with a suggestion from the model's field names
    ("sites.yaml", "        thresholds:\n          - rule: combustible_gas",
     "        threshold:\n          - rule: combustible_gas",
     "sites.yaml: sites[0].sensors[0].threshold: unknown key `threshold`; did you mean `thresholds`?"),
    # a key nothing resembles: the keys the place allows
    ("zones.yaml", "radius_km: 3.0}", "radius_km: 3.0, colour: red}",
     "zones.yaml: zones[2].circle.colour: unknown key `colour` (allowed keys: lat, lon, radius_km)"),
    # wrong type, with the expected type
    ("sites.yaml", "    lat: 27.6300", "    lat: north",
     "sites.yaml: sites[0].lat: wrong type: expected a number, got 'north'"),
    ("hazwatch.yaml", "  group_wait_s: 30", "  group_wait_s: [30]",
     "hazwatch.yaml: notify.group_wait_s: wrong type: expected a number, got a list"),
    # out of range, with the bound
    ("hazwatch.yaml", "  group_wait_s: 30", "  group_wait_s: -1",
     "hazwatch.yaml: notify.group_wait_s: out of range: must be at least 0, got -1"),
    # a bad enum value, with the allowed values and the closest
    ("sites.yaml", "    kind: chemical", "    kind: chemcial",
     ("sites.yaml: sites[0].kind: 'chemcial' is not allowed: use one of 'chemical', 'tailings', 'rain'; "
     "did you mean 'chemical'?")),
    ("sites.yaml", "- {level: yellow, value: 10}", "- {level: yelow, value: 10}",
     ("sites.yaml: sites[0].sensors[0].thresholds[0].ladder[0].level: 'yelow' is not allowed: use one of "
     "'blue', 'yellow', 'orange', 'red'; did you mean 'yellow'?")),
])
def test_pydantic_errors_in_operator_terms(example: Path, file: str, old: str, new: str, expected: str) -> None:
    _edit(example, file, old, new)
    assert _issues(example) == [expected]


def test_missing_required_key(example: Path) -> None:
    _edit(example, "sites.yaml", "    enterprise: 临港石化有限公司\n", "")
    issues = _issues(example)
    assert issues[0] == "sites.yaml: sites[0].enterprise: missing required key `enterprise`"
    # the officer of that enterprise cannot be checked against an incomplete list of enterprises
    assert len(issues) == 1


def test_a_misspelt_required_key(example: Path) -> None:
    _edit(example, "hazwatch.yaml", "  from_number:", "  from_numbr:")
    assert _issues(example) == [
        "hazwatch.yaml: sms.from_number: missing required key `from_number`",
        "hazwatch.yaml: sms.from_numbr: unknown key `from_numbr`; did you mean `from_number`?",
    ]


def test_a_site_rule_kind_and_its_keys(example: Path) -> None:
    _edit(example, "sites.yaml", "    sensors:\n      - id: GT-101\n",
          "    site_rules:\n      - {kind: voting, rule: gas_vote}\n"
          "      - {kind: vote, rule: gas_2oo3, members: [{rule: combustible_gas}], k: 1, kk: 2}\n"
          "    sensors:\n      - id: GT-101\n")
    assert _issues(example) == [
        ("sites.yaml: sites[0].site_rules[0]: unknown kind 'voting': use one of 'vote', 'aggregate', "
         "'composite'; did you mean 'vote'?"),
        "sites.yaml: sites[0].site_rules[1].vote.members: needs at least 2 items, got 1",
        "sites.yaml: sites[0].site_rules[1].vote.kk: unknown key `kk`; did you mean `k`?",
    ]


# ------------------------------------------------------------------------------ every error at once


def test_a_zone_typo_is_reported_with_the_other_files_errors(tmp_path: Path) -> None:
    """The cross-file error (an unknown zone) does not wait until the per-file errors are fixed."""
    directory = materialise(tmp_path / "config", load_case("site_unknown_zone"), load_case("phone_not_e164"),
                            load_case("quiet_hours_not_quoted"), load_case("zone_without_area"))
    assert _issues(directory) == [
        *load_case("quiet_hours_not_quoted").expect,  # hazwatch.yaml
        *load_case("site_unknown_zone").expect,  # sites.yaml, cross-file
        *load_case("zone_without_area").expect,  # zones.yaml
        *load_case("phone_not_e164").expect,  # recipients.yaml
    ]


def test_file_errors_then_cross_file_errors_of_the_same_file(tmp_path: Path) -> None:
    directory = materialise(tmp_path / "config", load_case("latitude_out_of_range"),
                            load_case("duplicate_site_id"), load_case("officer_enterprise_without_site"))
    assert _issues(directory) == [
        *load_case("latitude_out_of_range").expect,
        *load_case("duplicate_site_id").expect,
        *load_case("officer_enterprise_without_site").expect,
    ]


def test_an_invalid_zone_still_counts_as_defined(example: Path) -> None:
    """A zone with its own error is not also reported as unknown where a site names it."""
    _edit(example, "zones.yaml", "radius_km: 3.0}", "radius_km: 300.0}")
    assert _issues(example) == ["zones.yaml: zones[2].circle.radius_km: out of range: must be at most 200, got 300.0"]


def test_an_unreadable_file_skips_the_references_into_it(example: Path) -> None:
    (example / "zones.yaml").write_text("zones: [\n", encoding="utf-8")
    issues = _issues(example)
    assert len(issues) == 1 and issues[0].startswith("zones.yaml: line 2, column 1: not valid YAML")
