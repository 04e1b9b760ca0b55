"""The one codec of ``hazwatch.maintenance`` (formats/maintenance.py)."""

from __future__ import annotations

import pytest

from formats.maintenance import RuntimeWindow, decode, encode


def test_a_window_comes_back_as_it_went() -> None:
    window = RuntimeWindow(17, "TD-001", ("PZ-01",), 1_796_000_000_000, 1_796_003_600_000, "calibration",
                           "piezometer recalibration")
    assert decode(encode(window)) == window
    assert window.key == "TD-001#silence-17"


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"id": 1, "site": "TD-001", "start_ms": 1}', "maintenance record lacks end_ms"),
    (b'{"id": 1, "site": "TD-001", "start_ms": 1, "end_ms": 2, "kind": "holiday"}',
     "maintenance record kind must be one of maintenance, calibration"),
    (b'[1]', "a maintenance record must be a JSON object, got list"),
])
def test_a_bad_record_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        decode(raw)
    assert str(caught.value).startswith(reason), caught.value
