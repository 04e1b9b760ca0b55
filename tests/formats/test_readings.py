"""The one codec of ``hazwatch.readings`` (formats/readings.py): what ingest encodes is what the
rules worker, the console and the history writer decode, and a value that is not a readings
record is refused with its reason."""

from __future__ import annotations

import orjson
import pytest

from formats.readings import Readings, ReadingsError, decode


def test_what_ingest_encodes_decodes_to_the_same_record() -> None:
    record = Readings("CH-001", ["GT-101", "GT-102"], [1_796_000_000_000, 1_796_000_000_500], [12.5, 3.0], [0, 1],
                      [0, 1], "3f9a0c11aa22bb33")
    assert decode(record.encode()) == record
    assert len(record) == 2


def test_an_older_writer_without_quality_or_indices() -> None:
    record = decode(orjson.dumps({"site": "TD-001", "sensor": ["PZ-01"], "ts": [1], "v": [4.5]}))
    assert (record.q, record.i, record.cfg) == ([0], [], "")
    # indices of the wrong length are not trusted: looked up by name
    record = decode(orjson.dumps({"site": "TD-001", "sensor": ["PZ-01"], "ts": [1], "v": [4.5], "q": [0],
                                  "i": [3, 4], "cfg": "x"}))
    assert (record.i, record.cfg) == ([], "")


def test_extend_appends_every_column() -> None:
    a = Readings("RG-001", ["RAIN-5M"], [1], [0.2], [0], [7], "f")
    a.extend(Readings("RG-001", ["RAIN-5M"], [2], [0.4], [0], [7], "f"))
    assert (a.ts, a.v, a.i) == ([1, 2], [0.2, 0.4], [7, 7])


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not an object but list"),
    (b'{"sensor": [], "ts": [], "v": []}', "no 'site'"),
    (b'{"site": 7, "sensor": [], "ts": [], "v": []}', "site is not a string: 7"),
    (b'{"site": "CH-001", "sensor": "GT-101", "ts": [1], "v": [1.0]}', "sensor is not a list"),
    (b'{"site": "CH-001", "sensor": ["GT-101"], "ts": [1, 2], "v": [1.0]}', "readings message columns differ in length"),
    (b'{"site": "CH-001", "sensor": ["GT-101"], "ts": [1], "v": [1.0], "q": [0, 0]}',
     "readings message columns differ in length"),
])
def test_a_value_that_is_not_a_readings_record_says_why(raw: bytes, reason: str) -> None:
    with pytest.raises(ReadingsError) as caught:
        decode(raw)
    assert str(caught.value).startswith(reason), caught.value
