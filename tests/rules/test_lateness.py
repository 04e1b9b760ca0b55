"""Allowed lateness: out-of-order readings within it are evaluated in timestamp order; older ones
are rejected with a reason; decisions do not depend on batch size or on a restart."""

from __future__ import annotations

import random

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from config.models import Config, Settings, Site, SmsSettings
from rules.batch import Batch
from rules.engine import Engine, Output

T0 = 1_767_225_600_000
S = 1000
LADDER = [{"level": "yellow", "value": 20}, {"level": "orange", "value": 35}, {"level": "red", "value": 50}]


def make_config(lateness_s: float = 30.0, min_duration_s: float = 10.0) -> Config:
    sensor = {"id": "G1", "quantity": "combustible_gas", "unit": "%LEL", "period_s": 5,
              "allowed_lateness_s": lateness_s,
              "thresholds": [{"rule": "gas", "ladder": LADDER, "deadband": 2, "min_duration_s": min_duration_s}]}
    site = Site.model_validate({"id": "X", "name": "x", "kind": "chemical", "enterprise": "e", "region": "320582",
                                "lat": 30, "lon": 120, "zone": "Z", "sensors": [sensor]})
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), sites=[site], zones=[],
                  recipients=[])


def batch(readings: list[tuple[float, float]]) -> Batch:
    return Batch(["X"] * len(readings), ["G1"] * len(readings),
                 np.array([T0 + round(t * S) for t, _ in readings], dtype=np.int64),
                 np.array([v for _, v in readings], dtype=np.float64), np.zeros(len(readings), dtype=np.int64))


def levels(out: Output) -> list[tuple[float, str]]:
    """Threshold level changes (not the offline faults a silent test sensor also gets)."""
    return [((e.ts - T0) / S, e.level) for e in out.warnings if e.rule == "gas"]


def run(readings: list[tuple[float, float]], size: int = 1000, config: Config | None = None
        ) -> tuple[list[tuple[float, str]], list[str]]:
    eng = Engine(config or make_config(), started_ms=T0)
    got, rejects = [], []
    for i in range(0, len(readings), size):
        out = eng.process(batch(readings[i:i + size]), T0)
        got += levels(out)
        rejects += [why for _, why in out.rejects]
    got += levels(eng.flush(T0))
    return got, rejects


ORDERED = [(t * 5.0, v) for t, v in enumerate([0, 25, 25, 25, 40, 40, 40, 0, 0])]


def test_readings_in_a_different_order_within_the_lateness_give_the_ordered_events() -> None:
    expected, _ = run(ORDERED)
    assert expected == [(15.0, "yellow"), (30.0, "orange"), (35.0, "normal")]  # sanity: the ordered run
    shuffled = [ORDERED[i] for i in (1, 0, 3, 2, 4, 6, 5, 8, 7)]
    assert run(shuffled) == (expected, [])
    assert run(shuffled, size=1) == (expected, [])


def test_a_reading_beyond_the_allowed_lateness_is_rejected_with_a_reason() -> None:
    got, rejects = run([(100, 0.0), (131, 0.0), (100.5, 60.0)])
    assert got == []
    assert len(rejects) == 1 and "beyond the allowed lateness of 30 s" in rejects[0]
    # exactly at the lateness edge is still accepted
    assert run([(131, 0.0), (101, 60.0)])[1] == []


def test_duplicates_are_ignored_and_counted() -> None:
    eng = Engine(make_config(), started_ms=T0)
    eng.process(batch([(0, 25), (5, 25), (5, 25)]), T0)
    eng.process(batch([(5, 25)]), T0)
    assert eng.stats.duplicates == 2 and eng.stats.late == 0


def test_the_clock_releases_what_waited_its_lateness_in_the_stream() -> None:
    eng = Engine(make_config(min_duration_s=0), started_ms=T0)
    assert levels(eng.process(batch([(0, 60)]), T0)) == []  # held: nothing newer has arrived
    assert levels(eng.tick(T0 + 29 * S)) == []
    out = eng.tick(T0 + 30 * S)
    assert levels(out) == [(0.0, "red")] and out.released == ["X"]
    # a reading older than one released by the clock is late now
    assert "allowed lateness" in eng.process(batch([(-1, 0)]), T0 + 31 * S).rejects[0][1]


def test_held_readings_survive_a_restart() -> None:
    config = make_config()
    expected, _ = run(ORDERED)
    first = Engine(config, started_ms=T0)
    got = levels(first.process(batch(ORDERED[:5]), T0))
    second = Engine(config, started_ms=T0)
    second.import_site("X", orjson.loads(orjson.dumps(first.export_site("X"))))
    got += levels(second.process(batch(ORDERED[5:]), T0)) + levels(second.flush(T0))
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.sampled_from([0.0, 19.0, 20.0, 30.0, 36.0, 49.0, 50.0, 60.0]), min_size=1, max_size=40),
       seed=st.integers(0, 10_000), size=st.sampled_from([1, 7, 1000]))
def test_any_arrival_order_within_the_lateness_gives_the_same_events(values: list[float], seed: int,
                                                                      size: int) -> None:
    ordered = [(i * 5.0, v) for i, v in enumerate(values)]
    # displace each reading by at most 30 s (6 periods): a random order within the lateness
    rng = random.Random(seed)
    keyed = sorted(ordered, key=lambda r: r[0] + rng.uniform(0, 29.9))
    assert run(keyed, size=size) == run(ordered)
