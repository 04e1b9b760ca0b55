"""The rules worker's decoding of ``hazwatch.readings`` values (rules/worker.py ``decode``): one
pass when every message is good; a bad message is set aside with its reason, the others kept."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from rules.worker import decode


def message(site: str, n: int, start: int = 0) -> bytes:
    return orjson.dumps({"site": site, "sensor": [f"S{i}" for i in range(n)], "ts": list(range(start, start + n)),
                         "v": [1.0] * n, "q": [0] * n})


BAD = [b"{not json", b"[1, 2]", orjson.dumps({"site": "X", "sensor": ["a"], "ts": [1, 2], "v": [1.0], "q": [0]}),
       orjson.dumps({"site": ["unhashable"], "sensor": ["a"], "ts": [1], "v": [1.0], "q": [0]}),
       orjson.dumps({"site": "X", "sensor": ["a"], "ts": [1], "v": ["x"], "q": [0]}), b"42"]


def test_good_messages_make_one_batch() -> None:
    batch, sites, rejects = decode([message("CH-001", 3), message("TD-001", 2, 10)])
    assert (len(batch), sites, rejects) == (5, {"CH-001", "TD-001"}, [])
    assert list(batch.site) == ["CH-001"] * 3 + ["TD-001"] * 2
    assert batch.ts.tolist() == [0, 1, 2, 10, 11]


@given(st.lists(st.one_of(st.integers(0, 5).map(lambda n: message("CH-001", n)), st.sampled_from(BAD)),
                max_size=12))
def test_bad_messages_are_set_aside_and_the_good_ones_kept(values: list[bytes]) -> None:
    batch, sites, rejects = decode(values)
    good = [v for v in values if v not in BAD]
    assert sorted(raw for raw, _reason in rejects) == sorted(v for v in values if v in BAD)
    assert all(reason.startswith("undecodable readings message") for _raw, reason in rejects)
    assert len(batch) == sum(len(orjson.loads(v)["ts"]) for v in good)
    assert sites == ({"CH-001"} if good else set())
