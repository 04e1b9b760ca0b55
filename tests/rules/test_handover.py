"""Which changelog record of a site a restore keeps (rules.handover.newer)."""

from __future__ import annotations

import pytest

from rules.handover import newer


@pytest.mark.parametrize(("kept", "read", "replaces"), [
    ({"offset": [3, 10]}, {"offset": [3, 12]}, True),   # a later snapshot
    ({"offset": [3, 12]}, {"offset": [3, 12]}, True),   # a tick changed the state, not the offset
    ({"offset": [3, 12]}, {"offset": [3, 10]}, False),  # a late writer's older state
    ({"offset": [3, 12]}, {"offset": [5, 1]}, True),    # another partition (partitions were added)
    ({}, {"offset": [3, 1]}, True),                     # the first state with readings
    ({"offset": [3, 1]}, {}, True),                     # no offset to compare
])
def test_a_restore_keeps_the_state_of_the_latest_reading(kept: dict, read: dict, replaces: bool) -> None:
    assert newer(kept, read) is replaces
