"""Data-quality checks (offline, stuck, out of range, spike): table-driven tests of the pure stage."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.models import Config, Sensor, Settings, Site, SmsSettings
from config.rules import QualitySpec
from formats.warning import episode_id
from rules.quality import (
    STATE_BYTES_PER_SENSOR,
    QualityEngine,
    QualityState,
    QualityTable,
    fault_warnings,
)
from rules.threshold import ThresholdTable

STEP = 5000  # ms between readings: period_s = 5


def sensor(sid: str = "G1", rng: tuple[float, float] | None = (0.0, 100.0), **quality: object) -> Sensor:
    return Sensor(id=sid, quantity="combustible_gas", unit="%LEL", period_s=5, range=rng,
                  quality=QualitySpec(**quality))


def make_config(*sensors: Sensor, site: str = "X") -> Config:
    s = Site(id=site, name="x", kind="chemical", enterprise="e", region="320582", lat=30, lon=120,
             zone="Z", sensors=list(sensors) or [sensor()])
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), sites=[s],
                  zones=[], recipients=[])


def engine_for(*sensors: Sensor, started_ms: int = 0) -> QualityEngine:
    return QualityEngine(QualityTable.from_config(make_config(*sensors)), started_ms=started_ms)


def run(values: list[float], **kw: object) -> tuple[list[tuple[str, str, int]], list[bool]]:
    """Feed one sensor values at 5 s steps (now = ts); return (check, state, ts) events and the mask."""
    eng = engine_for(sensor(**kw))  # type: ignore[arg-type]
    ts = np.arange(len(values), dtype=np.int64) * STEP
    mask, events = eng.process(np.zeros(len(values), dtype=np.int64), ts, np.asarray(values, float), ts)
    return [(e["check"], e["state"], e["ts"]) for e in events], mask.tolist()


F, T = False, True


@pytest.mark.parametrize(
    ("values", "events", "mask"),
    [
        pytest.param([0.0, 100.0], [], [F, F], id="exactly-at-both-limits-is-in-range"),
        pytest.param([100.0001], [("out_of_range", "fault", 0)], [T], id="just-above"),
        pytest.param([-0.1, 50, 50], [("out_of_range", "fault", 0), ("out_of_range", "ok", 5000)], [T, F, F],
                     id="just-below-then-recovers"),
        pytest.param([150, 200, 120, 50], [("out_of_range", "fault", 0), ("out_of_range", "ok", 15000)],
                     [T, T, T, F], id="one-event-per-change-no-repeats"),
        pytest.param([50, float("nan"), float("inf"), 50],
                     [("out_of_range", "fault", 5000), ("out_of_range", "ok", 15000)], [F, T, T, F],
                     id="not-finite-is-out-of-range"),
    ],
)
def test_out_of_range(values, events, mask):
    assert run(values) == (events, mask)


def test_no_range_means_no_range_check():
    assert run([-1e9, 1e9], rng=None) == ([], [F, F])


@pytest.mark.parametrize(
    ("values", "events", "mask"),
    [
        pytest.param([5, 5], [], [F, F], id="n-minus-1-equal-is-fine"),
        pytest.param([5, 5, 5], [("stuck", "fault", 10000)], [F, F, T], id="n-equal-is-stuck"),
        pytest.param([5, 5, 5, 5, 5, 6], [("stuck", "fault", 10000), ("stuck", "ok", 25000)],
                     [F, F, T, T, T, F], id="no-repeats-recovers-on-change"),
        pytest.param([5, 5, 6, 6, 6], [("stuck", "fault", 20000)], [F, F, F, F, T], id="run-restarts-on-change"),
        pytest.param([5.0, 5.0000001, 5.0], [], [F, F, F], id="exact-equality-only"),
        pytest.param([5, 5, 5, 6, 6, 6], [("stuck", "fault", 10000), ("stuck", "ok", 15000),
                                          ("stuck", "fault", 25000)], [F, F, T, F, F, T], id="second-episode"),
    ],
)
def test_stuck(values, events, mask):
    assert run(values, stuck_samples=3) == (events, mask)


def test_stuck_is_off_by_default():
    assert run([5.0] * 20) == ([], [F] * 20)


def test_stuck_out_of_range_value_is_both_faults_and_recovers_cleanly():
    events, mask = run([150, 150, 150, 50], stuck_samples=3)
    assert events == [("out_of_range", "fault", 0), ("stuck", "fault", 10000),
                      ("stuck", "ok", 15000), ("out_of_range", "ok", 15000)]
    assert mask == [T, T, T, F]


WINDOW = [51, 52, 53, 52, 51]  # median 52, MAD 1; with range 0..100 the MAD floor is 1 -> limit 5 x 1 = 5


@pytest.mark.parametrize(
    ("values", "events", "mask"),
    [
        pytest.param([51, 52, 53, 52, 90], [], [F] * 5, id="no-test-before-the-window-is-full"),
        pytest.param([*WINDOW, 90], [("spike", "spike", 25000)], [F] * 5 + [T], id="full-window-spike"),
        pytest.param([*WINDOW, 57], [], [F] * 6, id="exactly-at-the-limit-is-no-spike"),
        pytest.param([*WINDOW, 47], [], [F] * 6, id="exactly-at-the-low-limit-is-no-spike"),
        pytest.param([*WINDOW, 57.01], [("spike", "spike", 25000)], [F] * 5 + [T], id="just-beyond-the-limit"),
        pytest.param([*WINDOW, 46.99], [("spike", "spike", 25000)], [F] * 5 + [T], id="low-side"),
        pytest.param([*WINDOW, 90, 52, 53], [("spike", "spike", 25000)], [F] * 5 + [T, F, F],
                     id="isolated-spike-is-not-a-fault"),
        pytest.param([*WINDOW, 90, 91, 92, 93], [("spike", "spike", 25000)], [F] * 5 + [T, F, F, F],
                     id="level-shift-passes-after-one-reading"),
        pytest.param([*WINDOW, 90, 10], [("spike", "spike", 25000), ("spike", "spike", 30000)],
                     [F] * 5 + [T, T], id="opposite-sides-are-two-spikes"),
        pytest.param([*WINDOW, 90, 52, 90], [("spike", "spike", 25000), ("spike", "spike", 35000)],
                     [F] * 5 + [T, F, T], id="each-isolated-spike-reported-once"),
        pytest.param([0] * 5 + [5], [], [F] * 6, id="zero-mad-uses-the-floor"),
        pytest.param([0] * 5 + [5.01], [("spike", "spike", 25000)], [F] * 5 + [T], id="zero-mad-beyond-floor"),
    ],
)
def test_spike(values, events, mask):
    assert run(values, spike_mad=5, spike_window=5) == (events, mask)


def test_spike_floor_without_range_is_relative_to_the_median():
    # no range: floor 1e-3 x max(1, |median|) -> limit 5e-3 around 0
    assert run([0] * 5 + [0.005], rng=None, spike_mad=5, spike_window=5) == ([], [F] * 6)
    assert run([0] * 5 + [0.0051], rng=None, spike_mad=5, spike_window=5)[0] == [("spike", "spike", 25000)]


def test_out_of_range_readings_do_not_enter_the_spike_window():
    # 4 in-range readings and an out-of-range one: the window is not full, so 50 is not tested
    assert run([51, 52, 150, 53, 52, 90], spike_mad=5, spike_window=5)[0] == [
        ("out_of_range", "fault", 10000), ("out_of_range", "ok", 15000)]


def test_spike_event_shape():
    eng = engine_for(sensor(spike_mad=5, spike_window=5))
    ts = np.arange(6, dtype=np.int64) * STEP
    _, events = eng.process(np.zeros(6, dtype=np.int64), ts, np.array([*WINDOW, 90.0]), 99)
    assert events == [{"site": "X", "subject": "X/G1", "sensor": "G1", "check": "spike", "state": "spike",
                       "ts": 25000, "detected_at": 99, "value": 90.0,
                       "detail": {"median": 52.0, "mad": 1.0, "limit": 5.0}}]


# -- offline: period 5 s x 3 periods = 15 s ----------------------------------------------------------

def test_offline_never_seen_counts_from_start():
    eng = engine_for(started_ms=1000)
    assert eng.tick(16000) == []  # exactly 3 x period after start
    # stamped when the silence passed the limit (start + 15 s), detected a millisecond later
    assert [(e["check"], e["state"], e["ts"], e["detected_at"]) for e in eng.tick(16001)] == [
        ("offline", "fault", 16000, 16001)]


@pytest.mark.parametrize(("now", "offline"), [(15000 + 1000, False), (15000 + 1001, True), (10**9, True)])
def test_offline_at_exactly_k_periods_vs_just_after(now, offline):
    eng = engine_for()
    eng.process(np.array([0]), np.array([500]), np.array([1.0]), 1000)  # arrived at wall clock 1000
    assert bool(eng.tick(now)) is offline


def test_offline_event_once_recovery_with_next_reading():
    eng = engine_for()
    eng.process(np.array([0]), np.array([500]), np.array([7.0]), 1000)
    fault = eng.tick(16001)
    assert fault == [{"site": "X", "subject": "X/G1", "sensor": "G1", "check": "offline", "state": "fault",
                      "ts": 16000, "detected_at": 16001, "value": None,
                      "detail": {"active": ["offline"], "episode_ts": 16000, "offline_ms": 15000,
                                 "last_seen_ms": 1000, "last_ts": 500, "last_value": 7.0}}]
    assert eng.tick(20000) == [] and eng.tick(10**9) == []  # no repeats while it lasts
    mask, events = eng.process(np.array([0]), np.array([60000]), np.array([8.0]), 61000)
    assert mask.tolist() == [False]  # healthy again: this reading is evaluated
    assert events == [{"site": "X", "subject": "X/G1", "sensor": "G1", "check": "offline", "state": "ok",
                       "ts": 60000, "detected_at": 61000, "value": 8.0,
                       "detail": {"active": [], "episode_ts": 16000, "since": 16000}}]
    assert eng.tick(61000 + 15000) == []
    assert len(eng.tick(61000 + 15001)) == 1  # a new episode


def test_tick_only_checks_the_given_sensors():
    eng = engine_for(sensor("A"), sensor("B"))
    assert [e["sensor"] for e in eng.tick(20000, sensors=[1])] == ["B"]
    assert [e["sensor"] for e in eng.tick(20000)] == ["A"]


def test_offline_then_stuck_is_one_equipment_episode():
    eng = engine_for(sensor(stuck_samples=3))
    cfg = make_config(sensor(stuck_samples=3))
    idx = np.zeros(2, dtype=np.int64)
    _, e1 = eng.process(idx, np.array([0, 5000]), np.array([5.0, 5.0]), 5000)
    e2 = eng.tick(20001)
    mask, e3 = eng.process(idx, np.array([30000, 35000]), np.array([5.0, 6.0]), 35000)
    # the 3rd equal value enters stuck *before* offline clears: the sensor never looks healthy
    assert [(e["check"], e["state"], e["detail"]["active"]) for e in e1 + e2 + e3] == [
        ("offline", "fault", ["offline"]), ("stuck", "fault", ["offline", "stuck"]),
        ("offline", "ok", ["stuck"]), ("stuck", "ok", [])]
    assert mask.tolist() == [True, False]
    warnings = fault_warnings(e1 + e2 + e3, cfg)
    assert [(w.kind, w.level, w.ts, w.detail["check"]) for w in warnings] == [
        ("raised", "yellow", 20000, "offline"), ("cleared", "normal", 35000, "stuck")]
    assert warnings[0].episode == warnings[1].episode == episode_id("X/G1", "equipment_fault", 20000)


def test_fault_warnings_shape():
    cfg = make_config(sensor(stuck_samples=3), sensor("G2"))
    eng = QualityEngine(QualityTable.from_config(cfg), started_ms=0)
    _, events = eng.process(np.zeros(4, dtype=np.int64), np.arange(4) * STEP, np.array([5.0, 5, 5, 6]), 7)
    raised, cleared = fault_warnings(events, cfg)
    assert (raised.rule, raised.kind, raised.level, raised.previous, raised.subject, raised.site) == (
        "equipment_fault", "raised", "yellow", "normal", "X/G1", "X")
    assert (raised.ts, raised.emitted_at, raised.value, raised.threshold, raised.unit) == (10000, 7, 5.0, None, "%LEL")
    assert raised.detail == {"check": "stuck", "quantity": "combustible_gas", "raised_ts": 10000}
    assert (cleared.kind, cleared.level, cleared.previous, cleared.value, cleared.episode) == (
        "cleared", "normal", "yellow", 6.0, raised.episode)
    # offline: the last value before the silence, or 0 for a sensor never seen
    offline = fault_warnings(eng.tick(10**6), cfg)
    assert [(w.subject, w.value) for w in offline] == [("X/G1", 6.0), ("X/G2", 0.0)]
    assert fault_warnings([e for e in events if e["check"] == "spike"], cfg) == []


# -- batches, duplicates, state ------------------------------------------------------------------------

def test_duplicates_and_stale_readings_change_nothing_and_stay_quarantined():
    eng = engine_for(sensor(stuck_samples=3, spike_mad=5, spike_window=5))
    idx, ts, v = np.zeros(6, dtype=np.int64), np.arange(6) * STEP, np.array([*WINDOW, 90.0])
    eng.process(idx, ts, v, 0)
    before = eng.export_site("X")
    mask, events = eng.process(idx, ts, v, 0)  # Kafka redelivery
    assert events == [] and mask.all() and eng.export_site("X") == before and eng.ignored_stale == 6


def test_readings_in_any_order_within_a_batch_are_checked_in_ts_order():
    values = np.array([5.0, 5, 5, 6, 150])
    ts = np.arange(5) * STEP
    a = engine_for(sensor(stuck_samples=3)).process(np.zeros(5, dtype=np.int64), ts, values, 0)
    perm = np.array([4, 2, 0, 3, 1])
    b = engine_for(sensor(stuck_samples=3)).process(np.zeros(5, dtype=np.int64), ts[perm], values[perm], 0)
    assert a[1] == b[1] and a[0][perm].tolist() == b[0].tolist()


def test_sensor_index_matches_the_threshold_table():
    cfg = make_config(sensor("A"), sensor("B"), sensor("C"))
    assert QualityTable.from_config(cfg).sensor_index == ThresholdTable.from_config(cfg).sensor_index


def test_state_bytes_per_sensor():
    eng = engine_for(sensor(spike_mad=5, spike_window=32))
    st_ = eng.state
    per_sensor = sum(getattr(st_, f).nbytes for f in QualityState.__dataclass_fields__ if f != "window")
    assert per_sensor == STATE_BYTES_PER_SENSOR == 64 < 1024
    assert st_.window.nbytes == 32 * 8  # the spike window, documented separately


def _feed(eng: QualityEngine, values: list[float], start: int = 0) -> list[dict]:
    ts = (np.arange(len(values)) + start) * STEP
    return eng.process(np.zeros(len(values), dtype=np.int64), ts, np.asarray(values, float), ts)[1]


def test_export_import_round_trip_continues_where_it_stopped():
    spec = dict(stuck_samples=3, spike_mad=5, spike_window=5)
    first, second = [*WINDOW, 5, 5], [5, 90, 52, 90, 91]
    whole = engine_for(sensor(**spec))
    expected = _feed(whole, first) + _feed(whole, second, start=len(first))
    a = engine_for(sensor(**spec))
    got = _feed(a, first)
    saved = orjson.loads(orjson.dumps(a.export_site("X")))  # through JSON, as the changelog table stores it
    b = engine_for(sensor(**spec))
    b.import_site("X", saved)
    assert b.export_site("X") == saved
    assert got + _feed(b, second, start=len(first)) == expected
    assert len(orjson.dumps(saved)) < 200


def test_import_gives_a_restart_grace_and_resets_missing_sensors():
    a = engine_for(sensor("A"), sensor("B"))
    a.process(np.array([0, 1]), np.array([0, 0]), np.array([1.0, 2.0]), 1000)
    saved = a.export_site("X")
    del saved["B"]
    b = engine_for(sensor("A"), sensor("B"), started_ms=50000)
    b.import_site("X", saved)
    assert b.state.last_seen_ms.tolist() == [1000, 50000] and b.state.last_ts.tolist() == [0, -1]
    assert b.tick(65000) == []  # a grace of one offline interval from the restart
    assert [(e["sensor"], e["ts"]) for e in b.tick(65001)] == [("A", 16000), ("B", 65000)]


def test_an_offline_fault_found_again_after_a_lost_state_write_is_the_same_episode():
    """The worker sends the fault, then dies before it saves the state: the next worker, started
    from the state saved before, finds the same fault with the same ts, so the same episode."""
    cfg = make_config(sensor())
    a = engine_for()
    a.process(np.array([0]), np.array([500]), np.array([7.0]), 1000)
    saved = orjson.loads(orjson.dumps(a.export_site("X")))
    first = fault_warnings(a.tick(16001), cfg)
    b = engine_for(started_ms=40000)
    b.import_site("X", saved)
    assert b.tick(55000) == []
    again = fault_warnings(b.tick(55001), cfg)
    assert [(w.episode, w.kind, w.ts) for w in again] == [(w.episode, w.kind, w.ts) for w in first]
    assert again[0].ts == 16000 and again[0].emitted_at == 55001


def test_import_with_a_smaller_window_keeps_the_newest_values():
    a = engine_for(sensor(spike_mad=5, spike_window=9))
    _feed(a, list(range(9)))
    b = engine_for(sensor(spike_mad=5, spike_window=5))
    b.import_site("X", a.export_site("X"))
    assert b.export_site("X")["G1"][-1] == [4.0, 5.0, 6.0, 7.0, 8.0]


# -- property: the micro-batch size changes nothing --------------------------------------------------

SENSORS = (sensor("A", stuck_samples=3, spike_mad=4, spike_window=5), sensor("B", rng=None, spike_mad=3),
           sensor("C", stuck_samples=4))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3),
                          st.sampled_from([0.0, 1.0, 2.0, 3.0, 50.0, 99.0, 150.0, -5.0])),
                min_size=1, max_size=120))
def test_events_and_masks_do_not_depend_on_batch_size(readings):
    # (sensor, ts step increment, value), in ts order; now = ts, so arrival follows event time
    ts = np.cumsum([step for _, step, _ in readings]).astype(np.int64) * 1000
    idx = np.array([s for s, _, _ in readings], dtype=np.int64)
    val = np.array([v for _, _, v in readings])
    order = np.lexsort((idx, ts))  # ts order, ties by sensor
    idx, ts, val = idx[order], ts[order], val[order]
    results = []
    for batch in (1, 7, 1000):
        eng = QualityEngine(QualityTable.from_config(make_config(*SENSORS)), started_ms=0)
        events, masks = [], []
        for i in range(0, len(ts), batch):
            sl = slice(i, i + batch)
            m, e = eng.process(idx[sl], ts[sl], val[sl], ts[sl])
            events += e
            masks += m.tolist()
        results.append((events, masks, eng.export_site("X")))
    assert results[0] == results[1] == results[2]
