"""The words of every text hazwatch sends, in zh-CN and English: the sender tag, colour words,
quantity names, and what residents and responders are asked to do. Data only; the renderers
(:mod:`alerts.render`, :mod:`alerts.grouping`, :mod:`alerts.escalation`) put them together.

The actions follow ``docs/STANDARDS.md`` "Warning dissemination": residents get what to do (the
mountain-torrent words 准备转移 / 立即转移), the people who must answer (叫应) what to answer.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["COLOURS", "COLOUR_WORDS", "QUANTITY_NAMES", "RESIDENT_ACTIONS", "RESPONDER_ACTIONS", "ROLES",
           "SENDER_TAGS", "Lang"]

Lang = Literal["zh-CN", "en"]

#: Sender signature put first in every SMS. Mainland carriers require a 【signature】 registered
#: with the SMS template; change it to the registered one (e.g. 【XX应急】). The English tag
#: uses ASCII brackets so that an all-ASCII text stays in GSM-7 (160/153 per segment).
SENDER_TAGS: dict[str, str] = {"zh-CN": "【hazwatch】", "en": "[hazwatch]"}

ROLES: tuple[str, ...] = ("operator", "officer", "regulator", "resident")

#: Colour adjectives per level.
_LEVEL_COLOURS = {
    "blue": ("蓝色", "Blue"),
    "yellow": ("黄色", "Yellow"),
    "orange": ("橙色", "Orange"),
    "red": ("红色", "Red"),
    "normal": ("正常", "Normal"),
}
COLOURS: dict[str, dict[str, str]] = {
    lang: {lvl: names[i] for lvl, names in _LEVEL_COLOURS.items()}
    for i, lang in enumerate(("zh-CN", "en"))
}

#: The colour word of a warning level, as the public knows it (蓝/黄/橙/红色预警).
COLOUR_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {lvl: f"{COLOURS['zh-CN'][lvl]}预警" for lvl in ("blue", "yellow", "orange", "red")},
    "en": {lvl: f"{COLOURS['en'][lvl]} warning" for lvl in ("blue", "yellow", "orange", "red")},
}

#: Names of every quantity in :data:`config.models.QUANTITY_UNITS`, (zh-CN, en).
_QUANTITIES: dict[str, tuple[str, str]] = {
    "combustible_gas": ("可燃气体浓度", "combustible gas"),
    "toxic_gas": ("有毒气体浓度", "toxic gas"),
    "oxygen": ("氧气浓度", "oxygen"),
    "tank_level": ("储罐液位", "tank level"),
    "temperature": ("温度", "temperature"),
    "pressure": ("压力", "pressure"),
    "phreatic_depth": ("浸润线埋深", "phreatic depth"),
    "freeboard": ("安全超高", "freeboard"),
    "dry_beach_length": ("干滩长度", "dry beach length"),
    "pond_level": ("库水位", "pond level"),
    "surface_displacement": ("表面位移", "surface displacement"),
    "rain_increment": ("5分钟雨量", "5-min rainfall"),
    "rain_1h": ("1小时雨量", "1-h rainfall"),
}
QUANTITY_NAMES: dict[str, dict[str, str]] = {
    lang: {q: names[i] for q, names in _QUANTITIES.items()}
    for i, lang in enumerate(("zh-CN", "en"))
}

# What residents do, by site kind and level, per language. Rain: the mountain-torrent action words
# (STANDARDS "Warning levels in Chinese practice": orange 准备转移, red 立即转移). Tailings: a
# dam-break flow runs down the valley, so residents climb to the sides. Chemical: shelter first,
# then evacuate upwind when told.
RESIDENT_ACTIONS: dict[str, dict[tuple[str, str], str]] = {
    "zh-CN": {
        ("rain", "red"): "立即转移！迅速撤到安全避险点，远离河沟！",
        ("rain", "orange"): "准备转移！收拾必要物品，听从村组指挥。",
        ("rain", "yellow"): "注意防范山洪，远离河沟，关注后续预警。",
        ("rain", "blue"): "关注雨情，远离河沟。",
        ("tailings", "red"): "立即转移！向两侧高处撤离，远离下游！",
        ("tailings", "orange"): "做好转移准备，远离下游沟谷，听从村组通知。",
        ("tailings", "yellow"): "远离下游沟谷，关注后续预警。",
        ("tailings", "blue"): "请关注后续预警。",
        ("chemical", "red"): "立即关闭门窗，听从指挥向上风向撤离！",
        ("chemical", "orange"): "关闭门窗，减少外出，做好撤离准备。",
        ("chemical", "yellow"): "减少外出，关注后续预警。",
        ("chemical", "blue"): "请关注后续预警。",
        # After a step down or the all-clear nobody returns before being told to.
        ("*", "deescalated"): "已转移人员暂勿返回，继续注意防范。",
        ("*", "cleared"): "已转移人员请听从通知后返回。",
    },
    "en": {
        ("rain", "red"): "EVACUATE NOW, keep away from streams!",
        ("rain", "orange"): "PREPARE TO EVACUATE, follow village orders.",
        ("rain", "yellow"): "Beware of flash floods, keep away from streams.",
        ("rain", "blue"): "Watch the rain, keep away from streams.",
        ("tailings", "red"): "EVACUATE NOW to high ground, away from the valley!",
        ("tailings", "orange"): "Prepare to evacuate, keep out of the valley.",
        ("tailings", "yellow"): "Keep out of the valley below the dam.",
        ("tailings", "blue"): "Watch for updates.",
        ("chemical", "red"): "Close windows NOW, evacuate upwind when told!",
        ("chemical", "orange"): "Close windows, stay indoors, prepare to evacuate.",
        ("chemical", "yellow"): "Limit time outdoors, watch for updates.",
        ("chemical", "blue"): "Watch for updates.",
        ("*", "deescalated"): "Evacuees: do not return yet, stay alert.",
        ("*", "cleared"): "Evacuees return only when told to.",
    },
}

# What the people who must answer (叫应) do, by role and level (normal: the all-clear).
# Operators verify and dispatch; officers respond on site; regulators press the enterprise.
RESPONDER_ACTIONS: dict[str, dict[tuple[str, str], str]] = {
    "zh-CN": {
        ("operator", "red"): "请立即核实，启动应急响应并反馈处置情况。",
        ("operator", "orange"): "请立即核实并反馈处置情况。",
        ("operator", "yellow"): "请及时核实并反馈处置情况。",
        ("operator", "blue"): "请关注并核实。",
        ("operator", "normal"): "请核实现场并完成处置反馈。",
        ("officer", "red"): "请立即启动应急响应，组织人员撤离并反馈！",
        ("officer", "orange"): "请立即现场核实并反馈处置情况。",
        ("officer", "yellow"): "请及时现场核实并反馈处置情况。",
        ("officer", "blue"): "请关注并核实。",
        ("officer", "normal"): "请反馈处置结果并做好记录。",
        ("regulator", "red"): "请督促企业立即处置并组织撤离。",
        ("regulator", "orange"): "请督促企业立即核实处置。",
        ("regulator", "yellow"): "请关注并督促企业核实。",
        ("regulator", "blue"): "请关注。",
        ("regulator", "normal"): "请督促企业完成处置反馈。",
    },
    "en": {
        ("operator", "red"): "Verify now, start emergency response, report.",
        ("operator", "orange"): "Verify now and report actions.",
        ("operator", "yellow"): "Please verify and report actions.",
        ("operator", "blue"): "Please watch and verify.",
        ("operator", "normal"): "Verify on site and close out the report.",
        ("officer", "red"): "Start emergency response now, evacuate, report!",
        ("officer", "orange"): "Verify on site now and report actions.",
        ("officer", "yellow"): "Verify on site and report actions.",
        ("officer", "blue"): "Please watch and verify.",
        ("officer", "normal"): "Report the outcome and close the record.",
        ("regulator", "red"): "Press the enterprise to act and evacuate now.",
        ("regulator", "orange"): "Press the enterprise to verify and act now.",
        ("regulator", "yellow"): "Watch and press the enterprise to verify.",
        ("regulator", "blue"): "Please watch.",
        ("regulator", "normal"): "Press the enterprise to close out its report.",
    },
}
