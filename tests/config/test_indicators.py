"""``indicators:`` in hazwatch.yaml (config/indicators.py): defaults, overrides, and errors in the
operator's terms, through the real loader on a copy of the example."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError, load_config
from tests.config.fixtures import materialise


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return materialise(tmp_path / "config")


def _with(directory: Path, section: str) -> Path:
    """hazwatch.yaml with ``section`` instead of the example's ``indicators:`` (a top-level key)."""
    path = directory / "hazwatch.yaml"
    kept, skipping = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("indicators:"):
            skipping = True
        elif skipping and line and not line[0].isspace():
            skipping = False
        if not skipping:
            kept.append(line)
    path.write_text("\n".join(kept) + "\n" + section, encoding="utf-8")
    return directory


def _issues(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory, env={})
    return [str(i) for i in info.value.issues]


def test_defaults(example: Path) -> None:
    ind = load_config(example, env={}).settings.indicators
    assert ind.coverage.target == 0.9
    assert ind.safety_index.weights.model_dump() == {"warnings": 25, "acknowledge": 20, "disposal": 15, "online": 15,
                                                     "false_alarms": 10, "overdue_repairs": 15}
    assert ind.safety_index.level_points == {"blue": 1, "yellow": 2, "orange": 4, "red": 8}
    assert (ind.safety_index.ack_due_min, ind.safety_index.repair_due_h, ind.safety_index.trend_days) == (None, 24, 7)


def test_overrides(example: Path) -> None:
    _with(example, "indicators:\n  coverage: {target: 0.95}\n  safety_index:\n"
                   "    weights: {warnings: 1, acknowledge: 0, disposal: 0, online: 0, false_alarms: 0,"
                   " overdue_repairs: 0}\n    trend_days: 30\n")
    ind = load_config(example, env={}).settings.indicators
    assert ind.coverage.target == 0.95 and ind.safety_index.trend_days == 30
    assert ind.safety_index.weights.warnings == 1 and ind.safety_index.weights.online == 0


@pytest.mark.parametrize(("section", "expected"), [
    ("indicators:\n  coverage: {target: 90}\n",
     "hazwatch.yaml: indicators.coverage.target: out of range: must be at most 1, got 90"),
    ("indicators:\n  coverage: {targt: 0.9}\n",
     "hazwatch.yaml: indicators.coverage.targt: unknown key `targt`; did you mean `target`?"),
    ("indicators:\n  safety_index: {trend_days: 0}\n",
     "hazwatch.yaml: indicators.safety_index.trend_days: out of range: must be at least 1, got 0"),
    ("indicators:\n  safety_index: {level_points: {purple: 3}}\n",
     "hazwatch.yaml: indicators.safety_index.level_points.purple"),
])
def test_errors(example: Path, section: str, expected: str) -> None:
    issues = _issues(_with(example, section))
    assert len(issues) == 1 and issues[0].startswith(expected), issues


def test_all_weights_zero_is_an_error(example: Path) -> None:
    (issue,) = _issues(_with(example, "indicators:\n  safety_index:\n    weights: {warnings: 0, acknowledge: 0, "
                                      "disposal: 0, online: 0, false_alarms: 0, overdue_repairs: 0}\n"))
    assert issue.startswith("hazwatch.yaml: indicators.safety_index.weights") and "at least one weight" in issue
