"""LiveState, the pure core of the console's live picture: fed decoded records by hand."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import example_dir, load_config
from console.live import LiveState
from formats.health import Presence, SensorHealth
from formats.readings import Readings
from formats.warning import WarningEvent

CONFIG = load_config(example_dir(), env={})
NOW = 1_800_000_000_000
H = 3_600_000


def state(now: int = NOW) -> LiveState:
    return LiveState(CONFIG, clock=lambda: now)


def readings(site: str, sensor: str, ts: list[int], v: list[float]) -> Readings:
    return Readings(site, [sensor] * len(ts), ts, v, [0] * len(ts))


def test_latest_value_is_the_newest_reading_whatever_the_order() -> None:
    live = state()
    live.ingest_readings(readings("CH-001", "GT-101", [NOW - 10_000, NOW - 20_000], [5.0, 7.0]))
    live.ingest_readings(readings("CH-001", "GT-101", [NOW - 30_000], [9.0]))
    s = live.sensor("CH-001", "GT-101")
    assert (s.value, s.ts_ms, s.status, s.fault) == (5.0, NOW - 10_000, "ok", None)
    assert live.sensor("CH-001", "GT-102").status == "unknown"


def test_bad_quality_unknown_and_non_finite_readings_are_skipped() -> None:
    live = state()
    msg = Readings("CH-001", ["GT-101", "NOPE", "GT-102"], [NOW, NOW, NOW], [1.0, 2.0, float("nan")], [1, 0, 0])
    assert live.ingest_readings(msg) == 0
    assert live.sensor("CH-001", "GT-101").value is None


def test_series_keeps_peaks_and_stays_bounded() -> None:
    live = state()
    ts = list(range(NOW - 24 * H + 1000, NOW, 1000))  # 1 Hz for a day: 86 400 readings
    v = [float(i % 600) for i in range(len(ts))]
    v[50_000] = 999.0
    live.ingest_readings(readings("TD-001", "PZ-01", ts, v))
    pts = live.series("TD-001", "PZ-01", NOW - 24 * H, 2000)
    assert len(pts) <= 2000
    assert max(p[1] for p in pts) == 999.0 and min(p[1] for p in pts) == 0.0
    assert [p[0] for p in pts] == sorted(p[0] for p in pts)
    recent = live.series("TD-001", "PZ-01", NOW - H, 2000)
    assert recent and all(t >= NOW - H for t, _ in recent)


def test_readings_older_than_the_ring_are_dropped_from_the_trend() -> None:
    live = state()
    live.ingest_readings(readings("TD-001", "PZ-01", [NOW], [1.0]))
    live.ingest_readings(readings("TD-001", "PZ-01", [NOW - 24 * H], [2.0]))  # same slot, older
    live.ingest_readings(readings("TD-001", "PZ-01", [NOW - 25 * H], [3.0]))  # before the window
    assert live.series("TD-001", "PZ-01", NOW - 48 * H) == [(NOW, 1.0)]
    assert live.sensor("TD-001", "PZ-01").value == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6 * H), st.floats(-1e3, 1e3, allow_nan=False)),
                min_size=1, max_size=200),
       st.integers(1, 50))
def test_series_does_not_depend_on_batch_size(points: list[tuple[int, float]], size: int) -> None:
    whole, parts = state(), state()
    ts = [NOW - 6 * H + t for t, _ in points]
    v = [x for _, x in points]
    whole.ingest_readings(readings("TD-001", "PZ-01", ts, v))
    for i in range(0, len(ts), size):
        parts.ingest_readings(readings("TD-001", "PZ-01", ts[i:i + size], v[i:i + size]))
    assert whole.series("TD-001", "PZ-01", NOW - 7 * H) == parts.series("TD-001", "PZ-01", NOW - 7 * H)
    assert whole.sensor("TD-001", "PZ-01") == parts.sensor("TD-001", "PZ-01")


def _health(sensor: str, check: str, state_: str, ts: int, active: list[str]) -> SensorHealth:
    return SensorHealth(site="CH-001", subject=f"CH-001/{sensor}", sensor=sensor, check=check, state=state_, ts=ts,
                        detected_at=ts, value=None, detail={"active": active, "episode_ts": ts})


@pytest.mark.parametrize(("events", "status", "fault"), [
    ([("offline", "fault", ["offline"])], "offline", "offline"),
    ([("stuck", "fault", ["stuck"])], "fault", "stuck"),
    ([("offline", "fault", ["offline"]), ("offline", "ok", [])], "ok", None),
    ([("offline", "fault", ["offline"]), ("stuck", "fault", ["offline", "stuck"]),
      ("offline", "ok", ["stuck"])], "fault", "stuck"),
    ([("out_of_range", "fault", ["out_of_range"])], "fault", "out_of_range"),
    ([("spike", "spike", [])], "ok", "spike"),
])
def test_health_events_give_sensor_status(events: list, status: str, fault: str | None) -> None:
    live = state()
    for k, (check, st_, active) in enumerate(events):
        live.ingest_health(_health("GT-101", check, st_, NOW - 60_000 + k, active))
    s = live.sensor("CH-001", "GT-101")
    assert (s.status, s.fault) == (status, fault)


def test_online_rate_is_the_fraction_of_sensor_time_not_offline() -> None:
    live = state()
    for sensor in ("GT-101", "GT-102", "LT-201"):  # data since 10 h
        live.ingest_readings(readings("CH-001", sensor, [NOW - 10 * H], [1.0]))
    live.ingest_health(_health("GT-101", "offline", "fault", NOW - 4 * H, ["offline"]))
    live.ingest_health(_health("GT-101", "offline", "ok", NOW - 2 * H, []))
    live.ingest_health(_health("GT-102", "offline", "fault", NOW - 1 * H, ["offline"]))
    rates = {r["enterprise"]: r for r in live.online_rate()}
    ch = rates["临港石化有限公司"]
    # 3 sensors x 10 h observed; 2 h + 1 h offline
    assert ch["sensors"] == 3 and ch["rate_24h"] == pytest.approx(1 - 3 / 30, abs=1e-4)
    assert rates["夏河矿业有限公司"]["rate_24h"] == 0.0  # not one record in the window


def test_a_sensor_that_has_not_reported_in_the_window_counts_as_offline() -> None:
    # after a restart: the replay holds GT-101's readings of the last 10 h; GT-102 went offline
    # before the window (that health event is not replayed) and LT-201 reported from 5 h ago
    live = state()
    live.ingest_readings(readings("CH-001", "GT-101", [NOW - 10 * H + i * H for i in range(10)],
                                  [1.0] * 10))
    live.ingest_readings(readings("CH-001", "LT-201", [NOW - 5 * H], [2.0]))
    ch = {r["enterprise"]: r for r in live.online_rate()}["临港石化有限公司"]
    assert ch["rate_24h"] == pytest.approx(1 - (10 + 5) / 30, abs=1e-4)
    assert live.sensor("CH-001", "GT-102").status == "unknown"


def test_trend_ring_is_allocated_on_the_first_reading_and_stays_small() -> None:
    from console.trend import SLOT_BYTES

    live = state()
    assert live.trend.nbytes == 0  # nothing allocated for sensors that never reported
    live.ingest_readings(readings("CH-001", "GT-101", [NOW - 1000], [1.5]))
    per_sensor = live.trend.nbytes / live.trend.rows
    assert live.trend.rows == 1 and SLOT_BYTES * live.trend.nb <= 12 * 1024
    assert per_sensor <= 16 * SLOT_BYTES * live.trend.nb  # the first growth step (16 rows)
    rows = len(live.keys)
    for site, sensor in live.keys:
        live.ingest_readings(readings(site, sensor, [NOW - 2000], [1.0]))
    assert live.trend.rows == rows and live.trend.nbytes <= max(16, rows) * 12 * 1024
    assert live.series("CH-001", "GT-101", NOW - H) == [(NOW - 2000, 1.0), (NOW - 1000, 1.5)]


def test_site_offline_needs_every_sensor_offline_or_the_gateway() -> None:
    live = state()
    for sensor in ("GT-101", "GT-102"):
        live.ingest_health(_health(sensor, "offline", "fault", NOW, ["offline"]))
    assert not live.site_offline("CH-001")
    live.ingest_health(_health("LT-201", "offline", "fault", NOW, ["offline"]))
    assert live.site_offline("CH-001")
    live.ingest_health(Presence(site="RG-001", status="offline", ts=NOW))
    assert live.site_offline("RG-001")


def test_site_level_follows_live_warnings() -> None:
    live = state()
    ev = WarningEvent(episode="e1", site="CH-001", subject="CH-001/GT-101", rule="combustible_gas", kind="raised",
                      level="orange", previous="normal", ts=NOW, emitted_at=NOW, value=30.0, threshold=25.0,
                      unit="%LEL")
    live.ingest_warning(ev)
    live.ingest_warning(replace(ev, episode="e2", subject="CH-001/GT-102", level="yellow"))
    assert live.site_level("CH-001") == "orange"
    live.ingest_warning(replace(ev, kind="cleared", level="normal", previous="orange"))
    assert live.site_level("CH-001") == "yellow"
    assert live.site_level("TD-001") == "normal"


def test_only_fresh_events_are_pushed() -> None:
    live = state()
    ev = WarningEvent(episode="e1", site="CH-001", subject="CH-001/GT-101", rule="r", kind="raised", level="red",
                      previous="normal", ts=NOW, emitted_at=NOW, value=1.0, threshold=1.0, unit="")
    assert live.ingest_warning(replace(ev, emitted_at=NOW - 1000)) is True
    assert live.ingest_warning(replace(ev, episode="e0", emitted_at=NOW - 3 * H)) is False
    assert live.site_level("CH-001") == "red"  # history still counts for the picture


def test_changed_since_coalesces_per_sensor() -> None:
    live = state()
    seq0 = live.current_seq
    live.ingest_readings(readings("CH-001", "GT-101", [NOW - 2000, NOW - 1000], [1.0, 2.0]))
    live.ingest_readings(readings("TD-001", "PZ-01", [NOW], [4.5]))
    seq1, out = live.changed_since(seq0)
    assert sorted((r["sensor"], r["value"]) for r in out) == [("GT-101", 2.0), ("PZ-01", 4.5)]
    assert live.changed_since(seq1) == (seq1, [])
    _, only_ch = live.changed_since(seq0, {"CH-001"})
    assert [r["site"] for r in only_ch] == ["CH-001"]
    assert np.all(live.seq >= 0)


class _FakeConsumer:
    """A consumer double: ``batches`` are what successive polls return (an exception is
    raised instead of returned); then empty polls."""

    def __init__(self, calls: list, batches: list) -> None:
        self.calls, self.batches = calls, list(batches)

    def partitions_for_topic(self, topic: str) -> set[int]:
        from config.topics import PARTITIONS

        return set(range(PARTITIONS[topic]))

    def assign(self, tps: list) -> None:
        self.calls.append(("assign", len(tps)))

    def offsets_for_times(self, query: dict) -> dict:
        return {tp: None for tp in query}

    def seek_to_end(self, tp) -> None:  # noqa: ANN001
        pass

    def seek(self, tp, offset: int) -> None:  # noqa: ANN001
        self.calls.append(("seek", tp.topic, tp.partition, offset))

    def poll(self, timeout_ms: int) -> dict:
        if not self.batches:
            return {}
        batch = self.batches.pop(0)
        if isinstance(batch, Exception):
            raise batch
        return batch

    def close(self) -> None:
        self.calls.append(("close",))


def _wait(condition, timeout_s: float = 10.0) -> None:  # noqa: ANN001
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


def test_reader_survives_failures_and_goes_on_from_its_offsets() -> None:
    from types import SimpleNamespace

    import orjson

    from config.topics import READINGS
    from console.live_reader import LiveReader

    live = state()
    rec = SimpleNamespace(topic=READINGS, partition=2, offset=41, timestamp=NOW,
                          value=orjson.dumps(readings("CH-001", "GT-101", [NOW], [3.5])))
    calls: list = []
    made: list = []

    def factory() -> _FakeConsumer:
        made.append(len(made))
        if len(made) == 1:
            raise ConnectionError("no broker yet")
        batches = [{"tp": [rec]}, RuntimeError("poll failed")] if len(made) == 2 else []
        return _FakeConsumer(calls, batches)

    reader = LiveReader("fake:9092", live, consumer_factory=factory, backoff_s=(0.01, 0.05))
    assert not reader.alive
    reader.start()
    try:
        _wait(lambda: len(made) >= 3 and reader.alive)
        assert live.sensor("CH-001", "GT-101").value == 3.5
        assert reader.positions == {(READINGS, 2): 42}
        assert ("seek", READINGS, 2, 42) in calls  # the third consumer goes on after offset 41
        assert ("close",) in calls and reader.restarts >= 2
    finally:
        reader.stop()
    assert not reader.alive
