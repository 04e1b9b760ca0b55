"""Scenario loading: packaged names, paths, and one exact error per kind of bad scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Config
from sensors.scenario import Scenario, ScenarioError, load_scenario, scenario_names
from sensors.simulator import plan

GOOD = """
name: t
sites:
  - site: CH-001
    speed: 5
    signals:
      GT-101: {baseline: 1.0, noise: 0.3}
    phases:
      - {name: normal, duration_s: 30}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _issues(path: Path, cfg: Config) -> list[tuple[str, str, str]]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, cfg)
    assert str(path) in str(info.value)
    return [(i.file, i.path, i.reason) for i in info.value.issues]


def test_load_by_path_keeps_the_source(tmp_path: Path, cfg: Config) -> None:
    path = _write(tmp_path, GOOD)
    scenario = load_scenario(str(path), cfg)
    assert scenario.source == str(path)
    assert scenario.sites[0].mode == "single" and scenario.sites[0].duration_s == 30
    assert len(plan(cfg, scenario, start_ms=0)) == 6


def test_unknown_name_lists_the_packaged_scenarios() -> None:
    with pytest.raises(ScenarioError, match=r"no packaged scenario 'flood' \(available: \['all'"):
        load_scenario("flood")
    assert "rain" in scenario_names()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read the file"):
        load_scenario(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        (
            "site: CH-001",
            "site: CH-404",
            "sites[0].site",
            "unknown site 'CH-404' (sites.yaml defines ['CH-001', 'TD-001', 'RG-001', 'CH-002', 'CH-003', 'CH-004', "
            "'TD-002', 'TD-003', 'RG-002', 'RG-003', 'RG-004', 'RG-005', 'RG-006', 'RG-007', 'RG-008', 'RG-009'])",
        ),
        (
            "GT-101: {baseline",
            "GT-999: {baseline",
            "sites[0].signals.GT-999",
            (
                "unknown sensor 'GT-999' at site CH-001 "
                "(sites.yaml defines ['GT-101', 'GT-102', 'LT-201'])"
            ),
        ),
        (
            "{name: normal, duration_s: 30}",
            "{name: leak, duration_s: 30, values: {GT-102: 80}}",
            "sites[0].phases[0].values.GT-102",
            "GT-102 has a target but no entry under sites[0].signals, so it is not simulated",
        ),
        (
            "{name: normal, duration_s: 30}",
            "{name: leak, duration_s: 30, values: {GT-101: 120}}",
            "sites[0].phases[0].values.GT-101",
            "target 120.0 is outside the measuring range [0.0, 100.0] of CH-001/GT-101",
        ),
        (
            "noise: 0.3}",
            "noise: 0.3, drift: 2}",
            "sites[0].signals.GT-101",
            "baseline 1.0 +/- drift 2.0 leaves the measuring range [0.0, 100.0] of CH-001/GT-101",
        ),
    ],
)
def test_scenario_must_fit_the_configuration(
    tmp_path: Path, cfg: Config, old: str, new: str, path: str, reason: str
) -> None:
    file = _write(tmp_path, GOOD.replace(old, new))
    assert _issues(file, cfg) == [(str(file), path, reason)]


def test_the_hourly_sum_is_derived_not_simulated(tmp_path: Path, cfg: Config) -> None:
    text = GOOD.replace("CH-001", "RG-001").replace("GT-101", "RAIN-1H")
    file = _write(tmp_path, text)
    [(_, path, reason)] = _issues(file, cfg)
    assert path == "sites[0].signals.RAIN-1H"
    assert reason.startswith(
        "RAIN-1H (rain_1h) is derived by the data logger from the rain_increment sensor"
    )


@pytest.mark.parametrize(
    ("old", "new", "path", "reason"),
    [
        ("speed: 5", "speed: 5\n    sped: 5", "sites[0].sped", "Extra inputs are not permitted"),
        ("speed: 5", "speed: 0", "sites[0].speed", "Input should be greater than 0"),
        (
            "speed: 5",
            "speed: 5\n    mode: stream",
            "sites[0].mode",
            "Input should be 'single' or 'batch'",
        ),
        (
            "noise: 0.3",
            "noise: -1",
            "sites[0].signals.GT-101.noise",
            "Input should be greater than or equal to 0",
        ),
        (
            "duration_s: 30",
            "duration_s: .nan",
            "sites[0].phases[0].duration_s",
            "Input should be a finite number",
        ),
        ("name: t\n", "", "name", "Field required"),
    ],
)
def test_structural_errors_name_file_path_and_reason(
    tmp_path: Path, cfg: Config, old: str, new: str, path: str, reason: str
) -> None:
    file = _write(tmp_path, GOOD.replace(old, new, 1))
    assert _issues(file, cfg) == [(str(file), path, reason)]


def test_not_yaml_and_not_a_mapping(tmp_path: Path, cfg: Config) -> None:
    file = _write(tmp_path, "sites: [\n")
    [(_, path, reason)] = _issues(file, cfg)
    assert path.startswith("line ") and reason.startswith("not valid YAML")
    file = _write(tmp_path, "- a\n")
    assert _issues(file, cfg) == [(str(file), "", "must be a mapping, got list")]


def test_every_problem_is_reported_at_once(tmp_path: Path, cfg: Config) -> None:
    text = GOOD.replace(
        "GT-101: {baseline: 1.0, noise: 0.3}", "GT-999: {baseline: 1}\n      LT-201: {baseline: 20}"
    )
    assert [p for _, p, _ in _issues(_write(tmp_path, text), cfg)] == [
        "sites[0].signals.GT-999",
        "sites[0].signals.LT-201",
    ]


def test_plan_checks_a_scenario_built_in_code(cfg: Config) -> None:
    scenario = Scenario.model_validate(
        {
            "name": "x",
            "sites": [
                {
                    "site": "XX-1",
                    "speed": 1,
                    "signals": {"A": {"baseline": 0}},
                    "phases": [{"name": "p", "duration_s": 1}],
                }
            ],
        }
    )
    with pytest.raises(ScenarioError, match=r"<scenario>: sites\[0\].site: unknown site 'XX-1'"):
        plan(cfg, scenario)
