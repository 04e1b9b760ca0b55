"""The segment rules and the text budget (alerts/segments.py), tested once, table-driven: every
renderer fits its texts with this module (test_render, test_grouping and test_escalation test
what the texts say)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from alerts import escalation, grouping, render
from alerts.segments import (
    MAX_UNITS,
    budget_units,
    encoding,
    first_fitting,
    fit,
    fits,
    segments,
    shortened,
    units,
)

#: (text, encoding, units in that encoding, segments)
SEGMENTS = [
    ("", "GSM-7", 0, 1),
    ("a" * 160, "GSM-7", 160, 1),  # GSM-7: 160 septets in one SMS
    ("a" * 161, "GSM-7", 161, 2),  # ... then 153 per segment
    ("a" * 306, "GSM-7", 306, 2),
    ("a" * 307, "GSM-7", 307, 3),
    ("€" * 80, "GSM-7", 160, 1),  # an extension character takes two septets
    ("€" * 81, "GSM-7", 162, 2),
    ("[hazwatch] Red warning", "GSM-7", 24, 1),  # [ and ] are extension characters
    ("中" * 70, "UCS-2", 70, 1),  # UCS-2: 70 units in one SMS
    ("中" * 71, "UCS-2", 71, 2),  # ... then 67 per segment
    ("中" * 134, "UCS-2", 134, 2),  # the budget: two segments
    ("中" * 135, "UCS-2", 135, 3),
    ("a" * 69 + "中", "UCS-2", 70, 1),  # one character outside the alphabet makes all UCS-2
    ("a" * 70 + "中", "UCS-2", 71, 2),
    ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: two UTF-16 units
    ("😀" * 36, "UCS-2", 72, 2),
    ("【hazwatch】", "UCS-2", 10, 1),
]


@pytest.mark.parametrize(("text", "enc", "n", "segs"), SEGMENTS, ids=[f"{e}-{n}" for _, e, n, _ in SEGMENTS])
def test_segment_rules(text: str, enc: str, n: int, segs: int) -> None:
    assert (encoding(text), units(text), segments(text)) == (enc, n, segs)


#: (text, UCS-2 units the budget counts, within the budget)
BUDGET = [
    ("a" * 134, 134, True),  # an all-ASCII text is counted as UCS-2 too (some gateways send it so)
    ("a" * 135, 135, False),
    ("中" * 134, 134, True),
    ("中" * 135, 135, False),
    ("€" * 134, 134, True),  # one unit in UCS-2, two septets in GSM-7
    ("😀" * 67, 134, True),
    ("😀" * 68, 136, False),
]


@pytest.mark.parametrize(("text", "n", "ok"), BUDGET)
def test_the_budget_is_two_ucs2_segments_for_every_text(text: str, n: int, ok: bool) -> None:
    assert MAX_UNITS == 2 * 67 == 134
    assert (budget_units(text), fits(text)) == (n, ok)
    assert not ok or segments(text) <= 2


@pytest.mark.parametrize(("candidates", "expected"), [
    (["中" * 200, "中" * 134, "中"], "中" * 134),  # the first within the budget
    (["中" * 200, "中" * 150], "中" * 150),  # none: the last, the most compact
    (["a"], "a"),
])
def test_first_fitting(candidates: list[str], expected: str) -> None:
    assert first_fitting(candidates) == expected


def test_first_fitting_makes_no_candidate_after_the_one_that_fits() -> None:
    made: list[int] = []

    def candidates():
        for n in (200, 100, 50):
            made.append(n)
            yield "中" * n

    assert first_fitting(candidates()) == "中" * 100 and made == [200, 100]
    with pytest.raises(ValueError, match="no candidate"):
        first_fitting([])


@pytest.mark.parametrize(("name", "cuts"), [
    ("石桥沟雨量站", ["石桥沟雨…", "石桥沟…"]),  # two characters give way to one "…"
    ("Xiahe dam", ["Xiahe d…", "Xiahe …", "Xiahe…", "Xiah…", "Xia…"]),
    ("夏河尾矿", []),  # four characters or fewer: never cut
    ("", []),
])
def test_shortened(name: str, cuts: list[str]) -> None:
    assert list(shortened(name)) == cuts


@dataclass(frozen=True)
class Detail:
    date: bool = True
    threshold: bool = True


def _text(d: Detail, name: str) -> str:
    return f"{name}:{'中' * 100}{'D' * 20 if d.date else ''}{'T' * 20 if d.threshold else ''}"


@pytest.mark.parametrize(("name", "max_units", "expected"), [
    ("石桥沟雨量站", 200, "石桥沟雨量站:" + "中" * 100 + "D" * 20 + "T" * 20),  # in full
    ("石桥沟雨量站", 130, "石桥沟雨量站:" + "中" * 100 + "T" * 20),  # the date given up first
    ("石桥沟雨量站", 110, "石桥沟雨量站:" + "中" * 100),  # then the threshold, and it stays given up
    ("石桥沟雨量站", 106, "石桥沟雨…:" + "中" * 100),  # then the name cut
    ("石桥沟雨量站", 105, "石桥沟…:" + "中" * 100),
    ("石桥沟雨量站", 50, "石桥沟…:" + "中" * 100),  # nothing fits: the most compact
])
def test_fit_gives_up_details_in_order_then_cuts_the_name(name: str, max_units: int, expected: str) -> None:
    assert fit(_text, Detail(), ("date", "threshold"), name, max_units) == expected


def test_every_renderer_fits_with_this_module() -> None:
    """No renderer keeps its own copy of the rules (issue 14)."""
    for module in (render, grouping, escalation):
        assert not hasattr(module, "_utf16"), module.__name__
    assert render.MAX_UNITS is MAX_UNITS  # re-exported where the texts are made
    assert render.fit is fit and escalation.fit is fit and grouping.first_fitting is first_fitting
