"""The one codec of ``hazwatch.health`` (formats/health.py): a sensor's data-quality or maintenance
event from the rules worker, or a device's presence from ingest."""

from __future__ import annotations

import orjson
import pytest

from formats.health import HealthError, Presence, SensorHealth, as_dict, decode, encode

FAULT = SensorHealth(site="CH-001", subject="CH-001/GT-101", sensor="GT-101", check="offline", state="fault",
                     ts=1_796_000_000_000, detected_at=1_796_000_015_000, value=12.5,
                     detail={"active": ["offline"], "episode_ts": 1_796_000_000_000})


def test_both_kinds_come_back_as_they_went() -> None:
    presence = Presence(site="RG-001", status="offline", ts=1_796_000_000_000)
    assert decode(encode(FAULT)) == FAULT and decode(encode(presence)) == presence
    assert orjson.loads(encode(presence)) == {"kind": "presence", "site": "RG-001", "status": "offline",
                                              "ts": 1_796_000_000_000, "source": "mqtt"}
    assert as_dict(FAULT)["detail"] == {"active": ["offline"], "episode_ts": 1_796_000_000_000}
    assert FAULT.active == ["offline"]


@pytest.mark.parametrize(("raw", "reason"), [
    (b"nope", "not JSON"),
    (b'"offline"', "not an object but str"),
    (b'{"site": "CH-001", "ts": 1}', "not a sensor health event"),
    (b'{"kind": "presence", "site": "RG-001", "ts": 1}', "not a presence health event"),
    (b'{"kind": "presence", "site": "RG-001", "status": "online", "ts": "soon"}', "site or ts of the wrong type"),
])
def test_what_is_not_a_health_event_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(HealthError) as caught:
        decode(raw)
    assert str(caught.value).startswith(reason), caught.value
