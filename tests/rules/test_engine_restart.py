"""The whole engine on the example configuration (every stage, site rules and a lateness buffer
added): the events are identical whatever the micro-batch size and whether the readings arrive
in one run or are split across a restart whose state went through JSON (the faust table)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import example_dir, load_config
from config.models import Config
from formats.readings import decode
from rules.batch import Batch
from rules.engine import Engine

T0 = 1_767_225_600_000


def example_with_extras() -> Config:
    config = load_config(example_dir())
    data = config.model_dump(mode="json")
    for site in data["sites"]:
        if site["id"] == "TD-001":
            site["site_rules"] = [
                {"rule": "dam", "kind": "aggregate", "members": [
                    {"sensor": s, "rule": r} for s, r in (("PZ-01", "phreatic_depth"), ("FB-01", "freeboard"),
                                                          ("DB-01", "dry_beach_length"), ("WL-01", "pond_level"))]},
                {"rule": "dam_forecast", "kind": "composite", "escalate": {"rule": "dam"},
                 "all_of": [{"sensor": "WL-01", "rule": "forecast", "min_level": "yellow"}]},
            ]
        if site["id"] == "CH-001":
            site["sensors"][0]["allowed_lateness_s"] = 10
    return Config.model_validate(data)


CONFIG = example_with_extras()
SENSORS = [(site.id, s) for site in CONFIG.sites for s in site.sensors]


def _values(sensor) -> list[float]:  # noqa: ANN001 - a config Sensor
    rungs = [step.value for rule in sensor.thresholds for step in rule.ladder]
    lo, hi = sensor.range or (0.0, 100.0)
    return sorted({lo, hi, *rungs, *(r * 1.02 for r in rungs), *(r * 0.98 for r in rungs)})


readings = st.lists(st.tuples(st.integers(0, len(SENSORS) - 1), st.integers(0, 20), st.integers(1, 400)),
                    min_size=1, max_size=150)


def as_batch(rows: list[tuple[int, int, int]]) -> Batch:
    """(sensor number, value choice, seconds since the previous reading) -> a time-ordered batch,
    with a little disorder: every fifth reading of CH-001/GT-101 comes 8 s early (within its
    10 s allowed lateness)."""
    site, sensor, ts, v = [], [], [], []
    t = T0
    for k, choice, step in rows:
        sid, s = SENSORS[k]
        t += step * 1000
        values = _values(s)
        site.append(sid)
        sensor.append(s.id)
        ts.append(t - (8000 if s.id == "GT-101" and len(ts) % 5 == 4 else 0))
        v.append(values[choice % len(values)])
    return Batch(site, sensor, np.asarray(ts, np.int64), np.asarray(v, np.float64), np.zeros(len(ts), np.int64))


def events(engine: Engine, b: Batch, size: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(0, len(b), size):
        part = Batch(b.site[i:i + size], b.sensor[i:i + size], b.ts[i:i + size], b.v[i:i + size], b.q[i:i + size])
        res = engine.process(part, int(part.ts.max()))
        # emitted_at / detected_at are the wall clock (here: the batch's newest reading); not compared
        out += [replace(w, emitted_at=0).to_json() for w in res.warnings]
        out += [orjson.dumps({**h, "detected_at": 0}) for h in res.health]
        out += [orjson.dumps(r[1]) for r in res.rejects]
    return out


@settings(max_examples=40, deadline=None)
@given(rows=readings, size=st.sampled_from([1, 7, 1000]), cut=st.integers(0, 150))
def test_events_identical_across_batch_sizes_and_a_restart(rows: list, size: int, cut: int) -> None:
    b = as_batch(rows)
    whole = events(Engine(CONFIG, started_ms=T0), b, 1000)
    first = Engine(CONFIG, started_ms=T0)
    cut = min(cut, len(b))
    head = Batch(b.site[:cut], b.sensor[:cut], b.ts[:cut], b.v[:cut], b.q[:cut])
    tail = Batch(b.site[cut:], b.sensor[cut:], b.ts[cut:], b.v[cut:], b.q[cut:])
    got = events(first, head, size) if cut else []
    saved = {s.id: orjson.loads(orjson.dumps(first.export_site(s.id))) for s in CONFIG.sites}
    second = Engine(CONFIG, started_ms=T0)
    for site, state in saved.items():
        second.import_site(site, state)
    got += events(second, tail, size) if len(tail) else []
    # the order of events inside one micro-batch is by reading time, so batchings may interleave
    # the events of different sensors differently: compare as multisets
    assert sorted(got) == sorted(whole)


def test_ingest_dense_indices_are_the_engines_and_are_used_only_for_the_same_configuration() -> None:
    from ingest.validate import validate_message

    engine = Engine(CONFIG, started_ms=T0)
    assert engine.thresholds.sensor_index == {key: CONFIG.sensor_index(*key) for key in engine.thresholds.sensor_index}
    batch, _rejects = validate_message(CONFIG, "hw/v1/TD-001/batch", orjson.dumps(
        {"readings": [{"sensor": "WL-01", "ts": T0, "v": 1.0}, {"sensor": "PZ-01", "ts": T0, "v": 2.0}]}), T0)
    record = decode(batch.encode())  # what the rules worker reads of it (formats/readings.py)
    assert record.i == [CONFIG.sensor_index("TD-001", "WL-01"), CONFIG.sensor_index("TD-001", "PZ-01")]
    b = Batch.from_readings([record])
    assert b.idx is not None and list(engine._dense(b)) == record.i
    # another configuration's indices are not trusted: looked up by name instead
    b.cfg = "0" * 16
    b.idx = np.array([0, 1])
    assert list(engine._dense(b)) == record.i
