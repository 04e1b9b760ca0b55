"""What changed between two configurations (config/diff.py), in an operator's words."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from config import example_dir, load_config
from config.diff import changes, summary


def _edit(directory: Path, name: str, edit) -> None:  # noqa: ANN001 - a function of the parsed YAML
    path = directory / name
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    edit(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_equal_configurations_have_no_change() -> None:
    assert changes(load_config(example_dir()), load_config(example_dir())) == []
    assert summary([]) == "no change"


def test_each_kind_of_change_is_one_line(tmp_path: Path) -> None:
    directory = Path(shutil.copytree(example_dir(), tmp_path / "config"))
    old = load_config(directory)

    def sites(doc: dict) -> None:
        ch = doc["sites"][0]
        ch["sensors"][0]["thresholds"][0]["ladder"][1]["value"] = 20  # GT-101 orange 25 -> 20
        ch["sensors"].pop(1)  # GT-102 removed
        td = {**doc["sites"][1], "id": "TD-009", "name": "新尾矿库"}
        doc["sites"].append(td)  # a site added: one line, not one per sensor
        doc["sites"][2]["name"] = "石桥沟雨量站（新）"

    def zones(doc: dict) -> None:
        doc["zones"][0]["subscribers"].append({"name": "居民新", "phone": "+8613700000199"})

    def recipients(doc: dict) -> None:
        doc["recipients"].pop(0)

    def settings(doc: dict) -> None:
        doc.setdefault("notify", {})["group_wait_s"] = 45

    _edit(directory, "sites.yaml", sites)
    _edit(directory, "zones.yaml", zones)
    _edit(directory, "recipients.yaml", recipients)
    _edit(directory, "hazwatch.yaml", settings)
    lines = changes(old, load_config(directory))
    assert lines == [
        "site RG-001 changed: name 石桥沟雨量站 → 石桥沟雨量站（新）",
        "site TD-009 added",
        "sensor CH-001/GT-101 changed: thresholds.combustible_gas.ladder.orange.value 25 → 20",
        "sensor CH-001/GT-102 removed",
        "zone Z-LINGANG-EAST changed: subscribers",
        "recipient **********0001 (operator) removed",
        "settings changed: notify",
    ]
    assert "+8613800000001" not in summary(lines)  # phone numbers masked
    assert summary(lines, limit=2) == "site RG-001 changed: name 石桥沟雨量站 → 石桥沟雨量站（新）; site TD-009 added; and 5 more"


def test_a_changed_secret_is_a_change_and_is_not_shown(tmp_path: Path) -> None:
    old = load_config(example_dir(), env={"TWILIO_AUTH_TOKEN": "old-token-1"})
    new = load_config(example_dir(), env={"TWILIO_AUTH_TOKEN": "new-token-2"})
    assert changes(old, new) == ["settings changed: sms"]


def test_a_changed_sensor_says_old_and_new_values_at_most_three(tmp_path: Path) -> None:
    directory = Path(shutil.copytree(example_dir(), tmp_path / "config"))
    old = load_config(directory)

    def sites(doc: dict) -> None:
        for site in doc["sites"]:
            for sensor in site["sensors"]:
                if (site["id"], sensor["id"]) == ("CH-001", "GT-101"):
                    ladder = sensor["thresholds"][0]["ladder"]
                    ladder.insert(0, {"level": "blue", "value": 5})  # a rung added
                    ladder[-1]["value"] = 45  # red 50 -> 45
                    sensor["thresholds"][0]["deadband"] = 1.5
                    sensor["period_s"] = 10
                if (site["id"], sensor["id"]) == ("CH-001", "GT-102"):
                    sensor["thresholds"][0]["ladder"][1]["value"] = 120

    _edit(directory, "sites.yaml", sites)
    lines = changes(old, load_config(directory))
    gt101 = next(line for line in lines if "GT-101" in line)
    assert gt101 == ("sensor CH-001/GT-101 changed: period_s 5 → 10, thresholds.combustible_gas.ladder.red.value "
                     "50 → 45, thresholds.combustible_gas.ladder.blue added, 1 more")
    assert any(line.startswith("sensor CH-001/GT-102 changed: thresholds.") and "→ 120" in line for line in lines)
