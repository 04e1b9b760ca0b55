"""``hazwatch report`` with the regional plans' indicators: coverage and the safety index, as data and text."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from alerts.report import render_report, report
from alerts.store import Store
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)
from tests.alerts.indicator_rows import ENT_A, ENT_B, small_config
from tests.alerts.test_coverage import T0, dataset  # noqa: F401  (pytest fixture)

DAY = dt.timedelta(days=1)


def test_report_carries_the_indicators_only_with_a_configuration(dataset: Store) -> None:  # noqa: F811
    assert "coverage" not in report(dataset, T0, T0 + DAY)
    assert "预警信息公众覆盖率" not in render_report(report(dataset, T0, T0 + DAY))
    data = report(dataset, T0, T0 + DAY, config=small_config())
    assert [e["episode"] for e in data["coverage"]["episodes"]] == ["e1", "e4", "e2"]
    index = data["safety_index"]
    assert index["dates"][-1] == "2026-07-02" and len(index["dates"]) == 7  # 08:00 local: the last day
    assert {r["enterprise"] for r in index["enterprises"]} == {ENT_A, ENT_B}


def test_rendered_indicators(dataset: Store) -> None:  # noqa: F811
    data = report(dataset, T0, T0 + DAY, config=small_config())
    text = render_report(data, ZoneInfo("Asia/Shanghai"))
    lines = text.splitlines()
    assert "预警信息公众覆盖率 (public warning coverage, red warnings): 目标 (target) ≥ 90.0%" in lines
    assert any(line.startswith("  2026-07-01 09:00  CH-A站 (CH-A)  e1") for line in lines)
    z_a = next(line for line in lines if line.strip().startswith("Z-A区 (Z-A)") and "%" in line)
    assert z_a.split()[2:6] == ["3", "2", "66.7%", "否"]
    assert z_a.endswith("已发布 (sent)")
    assert any("误报 (false alarm)" in line and "CH-A2" in line for line in lines)
    assert "    Z-A区 (Z-A): 2, 5/6 = 83.3%, 1" in lines
    follow = lines[lines.index("  未送达，请电话跟进 (not reached: follow up by phone)") + 1:][:2]
    assert follow[0].split()[:4] == ["+8613700000003", "王五", "Z-A区", "失败"]
    assert follow[0].endswith("21211 invalid number")
    assert follow[1].split()[:4] == ["+8613700000004", "赵六", "Z-B区", "无回执"]
    start = next(i for i, line in enumerate(lines) if line.startswith("危化企业安全管理动态指数"))
    assert lines[start].endswith("2026-06-26 — 2026-07-02, 按均值最低在前 (lowest mean first)")
    ranked = [line.split()[:2] for line in lines[start + 2:start + 6:2]]
    order = [(str(r["rank"]), r["enterprise"]) for r in data["safety_index"]["enterprises"]]
    assert [tuple(r) for r in ranked] == order and {e for _, e in order} == {ENT_A, ENT_B}
    assert any(line.startswith("  权重 (weights): 预警 (warnings) 25") for line in lines)


def test_an_empty_window_says_so(store: Store) -> None:
    text = render_report(report(store, T0, T0 + DAY, config=small_config()))
    assert "  无红色预警 (no red warnings)" in text.splitlines()
