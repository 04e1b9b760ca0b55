"""The regional plans' indicators in ``hazwatch report``: public warning coverage of the window's
red episodes (:mod:`alerts.coverage`) and the enterprise safety index's ranking with its trend
(:mod:`alerts.safety_index`), as data and as zh-CN text with English in parentheses."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

from alerts.coverage import coverage, follow_up
from alerts.report import _pad
from alerts.safety_index import COMPONENTS, safety_index
from alerts.store import Store
from config.models import Config

__all__ = ["indicators", "render_indicators"]

OUTCOME_ZH = {"awaiting_receipt": "无回执 (no receipt)", "pending": "未发出 (not sent yet)",
              "failed": "失败 (failed)", "suppressed": "已抑制 (suppressed)", "not_sent": "未安排 (none planned)"}
CAP_ZH = {"sent": "已发布 (sent)", "covered": "已在播 (covered)", "pending": "待发布 (pending)",
          "failed": "失败 (failed)", "suppressed": "已抑制 (suppressed)", "none": "无 (none)"}
COMPONENT_ZH = {"warnings": "预警 (warnings)", "acknowledge": "叫应 (acknowledge)", "disposal": "处置 (disposal)",
                "online": "在线 (online)", "false_alarms": "误报 (false alarms)",
                "overdue_repairs": "逾期维修 (overdue repairs)"}


def indicators(store: Store, config: Config, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    """Coverage of the red episodes raised in ``[since, until)``, and the safety index of the
    ``trend_days`` local days ending with the last day of the window."""
    return {"coverage": coverage(store, config, since, until),
            "safety_index": safety_index(store, config, until - dt.timedelta(microseconds=1))}


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def _cells(text: str) -> int:
    """Terminal cells of ``text``: CJK characters take two (as ``_pad`` counts)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _local(t: dt.datetime, tz: dt.tzinfo | None) -> str:
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M") if tz else t.isoformat()


def render_indicators(data: dict[str, Any], tz: dt.tzinfo | None = None) -> list[str]:
    """The text lines of :func:`indicators`' data."""
    cov, idx = data["coverage"], data["safety_index"]
    lines = ["", f"预警信息公众覆盖率 (public warning coverage, red warnings): 目标 (target) ≥ {_pct(cov['target'])}"]
    if not cov["episodes"]:
        lines.append("  无红色预警 (no red warnings)")
    labels = [f"{z['zone_name']} ({z['zone']})" for e in cov["episodes"] for z in e["zones"]]
    zw = max([30, *(_cells(x) + 2 for x in labels)])
    head = (_pad("区域 (zone)", zw) + _pad("订阅 (subscribers)", 20, True) + _pad("送达 (delivered)", 18, True)
            + _pad("覆盖率 (share)", 16, True) + _pad("达标 (met)", 12, True) + "  广播 (loudspeakers)")
    for e in cov["episodes"]:
        flag = "  误报 (false alarm)" if e["false_alarm"] else ""
        lines += ["", f"  {_local(e['raised_at'], tz)}  {e['site_name']} ({e['site']})  {e['episode'][:8]}{flag}",
                  "    " + head]
        for z in e["zones"]:
            met = "是 (yes)" if z["met"] else "否 (no)"
            lines.append("    " + _pad(f"{z['zone_name']} ({z['zone']})", zw) + _pad(str(z["subscribers"]), 20, True)
                         + _pad(str(z["delivered"]), 18, True) + _pad(_pct(z["share"]), 16, True)
                         + _pad(met, 12, True) + "  " + CAP_ZH[z["loudspeakers"]["state"]])
    if cov["zones"]:
        lines += ["", "  按区域 (by zone): 红色预警次数 (red episodes), 送达/订阅 (delivered/subscribers), 达标次数 (met)"]
        for z in cov["zones"]:
            lines.append(f"    {z['zone_name']} ({z['zone']}): {z['episodes']}, {z['delivered']}/{z['subscribers']}"
                         f" = {_pct(z['share'])}, {z['met']}")
    people = follow_up(cov)
    if people:
        lines += ["", "  未送达，请电话跟进 (not reached: follow up by phone)"]
        for p in people:
            why = f"  {p['reason']}" if p["reason"] else ""
            lines.append(f"    {p['phone']}  {p['name']}  {p['zone_name']}  {OUTCOME_ZH[p['outcome']]}"
                         f"  {p['site_name']} {p['episode'][:8]}{why}")
    dates = idx["dates"]
    ew = max([28, *(_cells(r["enterprise"]) + 2 for r in idx["enterprises"])])
    lines += ["", (f"危化企业安全管理动态指数 (enterprise safety index), {dates[0]} — {dates[-1]}, "
                   "按均值最低在前 (lowest mean first)"),
              "  " + _pad("排名 (rank)", 12) + _pad("企业 (enterprise)", ew) + _pad("均值 (mean)", 14, True)
              + _pad("当日 (today)", 14, True) + _pad("变化 (change)", 16, True) + f"  趋势 (trend, {len(dates)} d)"]
    for r in idx["enterprises"]:
        trend = " ".join(_num(v) for v in r["trend"])
        change = "-" if r["change"] is None else ("0" if r["change"] == 0 else f"{r['change']:+g}")
        lines.append("  " + _pad(str(r["rank"]), 12) + _pad(r["enterprise"], ew) + _pad(_num(r["mean"]), 14, True)
                     + _pad(_num(r["index"]), 14, True) + _pad(change, 16, True) + f"  {trend}")
        parts = [f"{COMPONENT_ZH[c]} {'-' if r['today'][c]['score'] is None else format(r['today'][c]['score'], '.2f')}"
                 for c in COMPONENTS]
        lines.append("    " + ", ".join(parts))
    weights = ", ".join(f"{COMPONENT_ZH[c]} {idx['weights'][c]:g}" for c in COMPONENTS)
    lines.append(f"  权重 (weights): {weights}; 叫应时限 (answer within) {idx['ack_due_min']:g} min, "
                 f"维修时限 (repair within) {idx['repair_due_h']:g} h")
    return lines
