"""Outside the demo no command falls back to the example configuration: without ``--config`` a
service or operator command exits 2 (a usage error, config/exit_codes.py) naming the option, before
it starts or touches anything. The demo and its local tools keep the example as their default."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config import example_dir
from hazwatch.cli import app

NEEDS_CONFIG = [
    ["ingest"], ["rules"], ["alerts"], ["history"], ["console"], ["run"], ["create-topics"],
    ["simulate"], ["episodes", "list"], ["silences", "list"], ["report"], ["users", "list"],
    ["devices", "list"],
]


@pytest.mark.parametrize("command", NEEDS_CONFIG, ids=" ".join)
def test_without_config_a_command_refuses_to_start(command: list[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example's database would be ./hazwatch.db
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: no configuration: give --config DIR")
    assert f"pass --config {example_dir()}" in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing created


def test_the_demos_tools_keep_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """fake-twilio reads the example's SMS account when no --config is given (it serves nothing real)."""
    import alerts.fakes.twilio

    seen: list[list[str]] = []
    monkeypatch.setattr(alerts.fakes.twilio, "main", lambda argv: seen.append(argv))
    result = CliRunner().invoke(app, ["fake-twilio", "--port", "1"])
    assert result.exit_code == 0, result.output
    assert seen and "--account-sid" in seen[0]


def test_a_bad_config_is_a_usage_error_too(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["rules", "--config", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "not a directory" in result.stderr


def test_rules_and_alerts_print_the_configurations_warnings_at_start(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import rules.worker

    config = tmp_path / "config"
    shutil.copytree(example_dir(), config)
    zones = config / "zones.yaml"
    zones.write_text(zones.read_text(encoding="utf-8").replace(
        '      - {name: 学校安全员钱红, phone: "+8613700000111"}\n', "").replace(
        "    subscribers:\n  - id: Z-XIAHE-VILLAGE", "    subscribers: []\n  - id: Z-XIAHE-VILLAGE"), encoding="utf-8")
    started: list[object] = []
    monkeypatch.setattr(rules.worker, "run_worker", lambda cfg, **kw: started.append(cfg))
    result = CliRunner().invoke(app, ["rules", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert started, "the worker starts: warnings are not errors"
    assert result.stderr.splitlines() == [
        (f"warning: {config}/zones.yaml: zones[1].subscribers: zone Z-LINGANG-SCHOOL has no subscribers: "
         "no resident there gets an SMS (CAP loudspeakers only)")]
