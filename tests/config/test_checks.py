"""Warnings that are not errors (config/checks.py) and ``hazwatch check-config [--strict]``.

Each test edits a fresh copy of the example; the example itself has no warning.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.checks import config_warnings
from config.loader import ENV_OVERRIDES, load_config
from hazwatch.cli import app
from tests.config.fixtures import EXAMPLE, materialise


@pytest.fixture(autouse=True)
def no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads the process environment; keep a developer's or CI's settings out of it."""
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(f"{var}_FILE", raising=False)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return materialise(tmp_path / "config")


def _edit(directory: Path, name: str, old: str, new: str, count: int = 1) -> None:
    path = directory / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == count, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def _warnings(directory: Path) -> list[str]:
    return [str(w) for w in config_warnings(load_config(directory, env={}))]


def _check(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(app, ["check-config", *args])
    return result.exit_code, result.stderr.splitlines(), result.stdout


def _without_subscribers(directory: Path, zone: str) -> None:
    """Empty ``zone``'s subscriber list (its subscribers are the lines after ``subscribers:``)."""
    path = directory / "zones.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"  - id: {zone}")
    at = next(i for i in range(start, len(lines)) if lines[i].strip() == "subscribers:")
    end = at + 1
    while end < len(lines) and lines[end].startswith("      - "):
        end += 1
    lines[at:end] = ["    subscribers: []"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_the_example_has_no_warning() -> None:
    assert _warnings(EXAMPLE) == []


# ------------------------------------------------------------------- red reaching nobody


def test_a_site_whose_red_reaches_no_resident_and_no_officer(example: Path) -> None:
    # TD-001's village has no subscribers, and its enterprise's officer is gone.
    _without_subscribers(example, "Z-XIAHE-VILLAGE")
    _edit(example, "hazwatch.yaml", "channels: [sms, cap]", "channels: [sms]")
    recipients = example / "recipients.yaml"
    lines = [line for line in recipients.read_text(encoding="utf-8").splitlines()
             if "role: officer, enterprise: 夏河矿业有限公司" not in line]
    recipients.write_text("\n".join(lines) + "\n", encoding="utf-8")
    warnings = _warnings(example)
    assert "sites.yaml: sites[1]: red warnings of TD-001 reach no resident and no officer: the zones it " \
           "affects (Z-XIAHE-VILLAGE) have no subscribers and no rule to residents has the cap channel; " \
           "recipients.yaml has no officer of '夏河矿业有限公司'" in warnings
    assert not any(w.startswith(("sites.yaml: sites[0]:", "sites.yaml: sites[2]:")) for w in warnings)


def test_no_routing_rule_for_red_residents_or_officers(example: Path) -> None:
    """Routing that sends red only to operators: every site is warned about, with the reason."""
    path = example / "hazwatch.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("routing:\n  rules:\n"), text.index("  quiet_hours:")
    path.write_text(text[:start] + "routing:\n  rules:\n    - {name: centre, audiences: [operators]}\n"
                    + text[end:], encoding="utf-8")
    assert [w for w in _warnings(example) if ": red warnings" in w] == [
        f"sites.yaml: sites[{i}]: red warnings of {site} reach no resident and no officer: no routing rule "
        f"sends a red warning of a {kind} site to residents; no routing rule sends it to officers"
        for i, (site, kind) in enumerate([("CH-001", "chemical"), ("TD-001", "tailings"), ("RG-001", "rain")])]


def test_red_reaching_people_only_at_some_hours(example: Path) -> None:
    path = example / "hazwatch.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("routing:\n  rules:\n"), text.index("  quiet_hours:")
    rules = ("routing:\n  rules:\n    - {name: centre, audiences: [operators]}\n"
             "    - {name: day-red, match: {levels: [red], hours: ['08:00', '18:00']}, audiences: [officers]}\n")
    path.write_text(text[:start] + rules + text[end:], encoding="utf-8")
    warnings = [w for w in _warnings(example) if ": red warnings" in w]
    assert warnings[0] == ("sites.yaml: sites[0]: red warnings of CH-001 reach residents or officers only through "
                           "routing rules limited by hours or rule names ('day-red'): any other red warning "
                           "reaches neither")
    assert len(warnings) == 3


# ------------------------------------------------------------------- ladders and ranges


def test_a_ladder_beyond_the_sensors_range(example: Path) -> None:
    # GT-101: combustible gas, range [0, 100] %LEL; rungs 10/25/50
    _edit(example, "sites.yaml", "- {level: orange, value: 25}\n              - {level: red, value: 50}",
          "- {level: orange, value: 25}\n              - {level: red, value: 120}")
    assert _warnings(example) == [
        ("sites.yaml: sites[0].sensors[0].thresholds[0]: threshold rule 'combustible_gas': red 120 %LEL lies "
         "above the sensor's range [0, 100] %LEL: that level can never be reached")]


def test_a_ladder_that_can_never_fire(example: Path) -> None:
    _edit(example, "sites.yaml", "        range: [0, 100]\n        thresholds:\n          - rule: combustible_gas",
          "        range: [0, 5]\n        thresholds:\n          - rule: combustible_gas")
    assert _warnings(example) == [
        ("sites.yaml: sites[0].sensors[0].thresholds[0]: threshold rule 'combustible_gas' can never fire: its "
         "first rung yellow 10 %LEL lies above the sensor's range [0, 5] %LEL")]


def test_a_rung_every_reading_meets(example: Path) -> None:
    _edit(example, "sites.yaml", "        range: [0, 100]\n        thresholds:\n          - rule: combustible_gas",
          "        range: [15, 100]\n        thresholds:\n          - rule: combustible_gas")
    assert _warnings(example) == [
        ("sites.yaml: sites[0].sensors[0].thresholds[0]: threshold rule 'combustible_gas': rung yellow 10 %LEL is "
         "at or beyond the range's minimum: every reading raises at least yellow")]


# ------------------------------------------------------------------- zones


def test_a_zone_without_subscribers(example: Path) -> None:
    _without_subscribers(example, "Z-LINGANG-SCHOOL")
    assert _warnings(example) == [
        ("zones.yaml: zones[1].subscribers: zone Z-LINGANG-SCHOOL has no subscribers: no resident there gets an "
         "SMS (CAP loudspeakers only)")]


# ------------------------------------------------------------------- recipients


def test_no_operator_and_an_escalation_tier_without_regulator(example: Path) -> None:
    recipients = example / "recipients.yaml"
    lines = [line for line in recipients.read_text(encoding="utf-8").splitlines()
             if "role: operator" not in line and 'tier: county, region: "360313"' not in line]
    recipients.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _warnings(example) == [
        ("sites.yaml: sites[0].region: 叫应 escalation to the county tier reaches nobody for CH-001: no county "
         "regulator in recipients.yaml covers region 360313"),
        "recipients.yaml: recipients: no operator: the monitoring centre hears of no warning by SMS",
    ]


# ------------------------------------------------------------------- the command


def test_check_config_prints_warnings_and_exits_0(example: Path) -> None:
    _without_subscribers(example, "Z-LINGANG-SCHOOL")
    code, stderr, stdout = _check(str(example))
    assert code == 0
    assert stderr == [(f"{example}/zones.yaml: zones[1].subscribers: warning: zone Z-LINGANG-SCHOOL has no "
                       "subscribers: no resident there gets an SMS (CAP loudspeakers only)")]
    assert re.fullmatch(r"OK: 3 sites, \d+ sensors, \d+ rules, 4 zones, \d+ recipients; 1 warning\(s\)\n", stdout)


def test_check_config_strict_fails_on_warnings(example: Path) -> None:
    _without_subscribers(example, "Z-LINGANG-SCHOOL")
    code, stderr, stdout = _check(str(example), "--strict")
    assert code == 2
    assert stderr[-1] == "1 warning(s); --strict fails on warnings"
    assert stdout == ""
    assert _check(str(EXAMPLE), "--strict")[0] == 0  # no warning: strict passes


def test_check_config_missing_recipients_is_an_error(example: Path) -> None:
    (example / "recipients.yaml").unlink()
    code, stderr, stdout = _check(str(example))
    assert code == 2 and stdout == ""
    assert stderr == [(f"{example}/recipients.yaml: <root>: file is missing: nobody would be notified, no operator, "
                       "officer or regulator (write `recipients: []` to run without any)"), "1 error(s)"]


def test_check_config_reports_errors_of_every_kind_at_once(example: Path) -> None:
    _edit(example, "sites.yaml", "    zone: Z-XIAHE-VILLAGE", "    zone: Z-XIAHE")  # cross-file
    _edit(example, "hazwatch.yaml", "  group_wait_s: 30", "  group_wait: 30")  # unknown key
    _edit(example, "sites.yaml", "    lat: 27.6300", "    lat: north")  # wrong type
    code, stderr, _ = _check(str(example))
    assert code == 2
    assert stderr == [
        f"{example}/hazwatch.yaml: notify.group_wait: unknown key `group_wait`; did you mean `group_wait_s`?",
        f"{example}/sites.yaml: sites[0].lat: wrong type: expected a number, got 'north'",
        (f"{example}/sites.yaml: sites[1].zone: unknown zone 'Z-XIAHE' (zones.yaml defines ['Z-LINGANG-EAST', "
         "'Z-LINGANG-SCHOOL', 'Z-SHIQIAO-VALLEY', 'Z-XIAHE-VILLAGE'])"),
        "3 error(s)",
    ]


def test_channel_kinds_by_name() -> None:
    """SMS providers (sms, sms-*) reach people by number, cap reaches zones; a chat-group robot is
    counted as reaching its audience, so that it never causes a false warning."""
    from config.checks import _kind

    assert [_kind(c) for c in ("sms", "sms-twilio", "sms-aliyun", "cap", "wecom-robot")] == [
        "sms", "sms", "sms", "broadcast", "group"]
