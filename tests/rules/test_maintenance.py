"""Maintenance and calibration windows in the rule engine: readings inside raise and clear
nothing, a health event says why, and no offline fault is reported while a window is open."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from config.models import Config, Settings, Site, SmsSettings
from formats.maintenance import RuntimeWindow
from rules.batch import Batch
from rules.engine import Engine
from rules.maintenance import fold_windows, upsert_window

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
S = 1000
LADDER = [{"level": "yellow", "value": 20}, {"level": "red", "value": 50}]


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp((T0 + seconds * S) / 1000, dt.UTC).isoformat()


def make_config(windows: list[dict[str, Any]]) -> Config:
    sensors = [{"id": sid, "quantity": "combustible_gas", "unit": "%LEL", "period_s": 10,
                "thresholds": [{"rule": "gas", "ladder": LADDER}]} for sid in ("G1", "G2")]
    site = Site.model_validate({"id": "X", "name": "x", "kind": "chemical", "enterprise": "e", "region": "320582",
                                "lat": 30, "lon": 120, "zone": "Z", "sensors": sensors, "maintenance": windows})
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), sites=[site], zones=[],
                  recipients=[])


CALIBRATION = {"kind": "calibration", "sensors": ["G1"], "start": iso(100), "end": iso(200),
               "reason": "季度标定 quarterly calibration with 50 %LEL test gas"}


def feed(eng: Engine, readings: list[tuple[float, str, float]], now_s: float = 0) -> tuple[list, list]:
    b = Batch(["X"] * len(readings), [r[1] for r in readings],
              np.array([T0 + round(r[0] * S) for r in readings], dtype=np.int64),
              np.array([r[2] for r in readings], dtype=np.float64), np.zeros(len(readings), dtype=np.int64))
    out = eng.process(b, T0 + round(now_s * S))
    return ([((e.ts - T0) / S, e.subject, e.level) for e in out.warnings], out.health)


def test_readings_inside_a_window_raise_nothing_and_a_health_event_says_why() -> None:
    eng = Engine(make_config([CALIBRATION]), started_ms=T0)
    warnings, health = feed(eng, [(90, "G1", 0), (100, "G1", 50), (110, "G1", 55), (150, "G2", 55)])
    assert warnings == [(150, "X/G2", "red")]  # G2 is not under calibration
    assert [(h["subject"], h["check"], h["state"], h["ts"]) for h in health] == [
        ("X/G1", "maintenance", "start", T0 + 100 * S)]
    assert health[0]["detail"]["reason"].startswith("季度标定")
    assert health[0]["detail"]["kind"] == "calibration"
    assert eng.stats.maintenance == 2
    # the window ends at 200 (exclusive): the reading at 200 is evaluated
    warnings, health = feed(eng, [(199, "G1", 55), (200, "G1", 55)])
    assert warnings == [(200, "X/G1", "red")]
    assert [(h["check"], h["state"], h["ts"]) for h in health] == [("maintenance", "end", T0 + 200 * S)]


def test_a_warning_open_before_the_window_is_neither_cleared_nor_raised_inside_it() -> None:
    eng = Engine(make_config([CALIBRATION]), started_ms=T0)
    assert feed(eng, [(90, "G1", 30)])[0] == [(90, "X/G1", "yellow")]
    assert feed(eng, [(120, "G1", 0), (130, "G1", 60)])[0] == []
    assert feed(eng, [(210, "G1", 0)])[0] == [(210, "X/G1", "normal")]


def test_a_site_window_covers_every_sensor_and_is_announced_once_per_sensor() -> None:
    window = {"start": iso(0), "end": iso(1000), "reason": "停车检修 shutdown"}
    eng = Engine(make_config([window]), started_ms=T0)
    warnings, health = feed(eng, [(10, "G1", 60), (10, "G2", 60), (20, "G1", 60)])
    assert warnings == []
    assert [(h["subject"], h["detail"]["kind"]) for h in health] == [("X/G1", "maintenance"), ("X/G2", "maintenance")]


def test_no_offline_fault_while_a_window_is_open_and_silence_counts_from_its_end() -> None:
    eng = Engine(make_config([CALIBRATION]), started_ms=T0)
    feed(eng, [(0, "G1", 0), (0, "G2", 0)], now_s=0)
    # offline after 3 periods = 30 s of silence; G1 is under calibration from 100 to 200
    offline = lambda now_s: sorted(h["subject"] for h in eng.tick(T0 + now_s * S).health  # noqa: E731
                                   if h["check"] == "offline")
    assert offline(150) == ["X/G2"]
    assert offline(220) == []  # 20 s after the window's end
    assert offline(231) == ["X/G1"]


def test_announcements_survive_a_restart() -> None:
    config = make_config([CALIBRATION])
    first = Engine(config, started_ms=T0)
    assert len(feed(first, [(100, "G1", 50)])[1]) == 1
    second = Engine(config, started_ms=T0)
    second.import_site("X", orjson.loads(orjson.dumps(first.export_site("X"))))
    assert feed(second, [(110, "G1", 50)])[1] == []


@pytest.mark.parametrize(("window", "message"), [
    (CALIBRATION | {"sensors": ["G9"]}, "unknown sensor 'G9'"),
    (CALIBRATION | {"end": iso(100)}, "must be before end"),
    (CALIBRATION | {"start": "2026-01-01T00:00:00"}, "timezone"),
    (CALIBRATION | {"reason": ""}, "at least 1 character"),
])
def test_bad_windows_are_explained(window: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_config([window])


# -- runtime windows (hazwatch.maintenance records, Engine.set_site_windows) -------------------------


def record(wid: int, start_s: float, end_s: float, sensors: list[str] | None = None, *, ended: bool = False,
           site: str = "X", reason: str = "更换探头 replacing the sensor head") -> dict[str, Any]:
    return {"id": wid, "site": site, "sensors": sensors or [], "start_ms": T0 + round(start_s * S),
            "end_ms": T0 + round(end_s * S), "kind": "maintenance", "reason": reason, "ended": ended}


def test_a_runtime_window_acts_like_a_static_one_and_the_health_event_names_its_silence() -> None:
    eng = Engine(make_config([]), started_ms=T0)
    eng.set_site_windows("X", [record(7, 100, 200, ["G1"])])
    warnings, health = feed(eng, [(100, "G1", 60), (110, "G1", 60), (110, "G2", 60)])
    assert warnings == [(110, "X/G2", "red")]
    assert [(h["subject"], h["detail"]["window"], h["detail"]["reason"]) for h in health] == [
        ("X/G1", "X#silence-7", "更换探头 replacing the sensor head")]
    assert feed(eng, [(200, "G1", 60)])[0] == [(200, "X/G1", "red")]  # end exclusive


def test_runtime_windows_merge_with_the_static_ones_and_replace_the_ones_given_before() -> None:
    eng = Engine(make_config([CALIBRATION]), started_ms=T0)  # static: G1 in [100, 200)
    eng.set_site_windows("X", [record(7, 100, 200, ["G2"])])
    assert feed(eng, [(100, "G1", 60), (100, "G2", 60)])[0] == []
    eng.set_site_windows("X", [])  # the runtime window is gone; the static one stays
    assert feed(eng, [(110, "G1", 60), (110, "G2", 60)])[0] == [(110, "X/G2", "red")]
    assert eng.stats.maintenance == 3


def test_a_whole_site_window_covers_every_sensor_and_other_sites_and_unknown_sensors_are_ignored() -> None:
    eng = Engine(make_config([]), started_ms=T0)
    eng.set_site_windows("X", [record(1, 0, 1000), record(2, 0, 1000, site="Y"), record(3, 0, 1000, ["G9"])])
    assert feed(eng, [(10, "G1", 60), (10, "G2", 60)])[0] == []
    eng.set_site_windows("Y", [record(2, 0, 1000, site="Y")])  # a site the configuration lacks: nothing
    eng.set_site_windows("X", [record(3, 0, 1000, ["G9"])])  # a sensor it lacks: left out
    assert feed(eng, [(20, "G1", 60)])[0] == [(20, "X/G1", "red")]


@pytest.mark.parametrize(("ended_at_s", "expected"), [
    (150, [(160, "X/G1", "red")]),  # ended early: readings after the end are evaluated
    (50, [(120, "X/G1", "red")]),  # ended before it began: no window at all
])
def test_an_ended_window_stops_at_its_end(ended_at_s: float, expected: list) -> None:
    eng = Engine(make_config([]), started_ms=T0)
    eng.set_site_windows("X", [record(7, 100, ended_at_s, ["G1"], ended=True)])
    warnings = feed(eng, [(120, "G1", 60), (160, "G1", 60)])[0]
    assert warnings == expected


def test_upsert_keeps_the_last_record_of_each_silence_and_drops_long_ended_windows() -> None:
    windows = upsert_window([], record(7, 100, 200))
    windows = upsert_window(windows, record(8, 50, 300))
    windows = upsert_window(windows, record(7, 100, 150, ended=True))
    assert [(w["id"], w["end_ms"] - T0, w["ended"]) for w in windows] == [(8, 300 * S, False), (7, 150 * S, True)]
    assert upsert_window(windows, record(7, 100, 150, ended=True)) == windows  # idempotent
    pruned = upsert_window(windows, record(9, 1000, 2000), now_ms=T0 + 400 * S, retain_ms=200 * S)
    assert [w["id"] for w in pruned] == [8, 9]  # 7 ended 250 s before now
    assert fold_windows([record(7, 100, 200), record(3, 0, 10, site="Y"), record(7, 100, 150, ended=True)]) == {
        "X": [record(7, 100, 150, ended=True)], "Y": [record(3, 0, 10, site="Y")]}


@pytest.mark.parametrize(("bad", "message"), [
    ({"site": "X", "start_ms": 1, "end_ms": 2}, "lacks id"),
    (record(7, 0, 1) | {"start_ms": "2026-01-01"}, "must be integers"),
    (record(7, 0, 1) | {"sensors": "G1"}, "list of sensor ids"),
    (record(7, 0, 1) | {"kind": "silence"}, "kind must be one of"),
    (record(7, 0, 1) | {"site": ""}, "non-empty string"),
])
def test_bad_records_are_explained(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RuntimeWindow.from_record(bad)


def test_no_offline_fault_while_a_runtime_window_is_open() -> None:
    eng = Engine(make_config([]), started_ms=T0)
    feed(eng, [(0, "G1", 0), (0, "G2", 0)], now_s=0)
    eng.set_site_windows("X", [record(7, 10, 200, ["G1"])])
    offline = sorted(h["subject"] for h in eng.tick(T0 + 150 * S).health if h["check"] == "offline")
    assert offline == ["X/G2"]


def test_runtime_announcements_survive_a_restart_once_the_windows_are_given_again() -> None:
    config, windows = make_config([]), [record(7, 100, 200, ["G1"])]
    first = Engine(config, started_ms=T0)
    first.set_site_windows("X", windows)
    assert len(feed(first, [(100, "G1", 50)])[1]) == 1
    saved = orjson.loads(orjson.dumps(first.export_site("X")))
    assert saved["maintenance"] == [["G1", "X#silence-7"]]
    second = Engine(config, started_ms=T0)  # the worker: windows from their table, then the state
    second.set_site_windows("X", windows)
    second.import_site("X", saved)
    assert feed(second, [(110, "G1", 50)]) == ([], [])


def test_the_table_is_empty_and_inside_is_a_no_op_without_windows() -> None:
    eng = Engine(make_config([]), started_ms=T0)
    assert not eng.maintenance
    eng.set_site_windows("X", [record(7, 0, 10, ["G1"])])
    assert eng.maintenance
    idx, ts = np.array([1, 1, 0, -1]), np.array([T0, T0, T0 + 5 * S, T0])
    assert eng.maintenance.inside(idx, ts).tolist() == [-1, -1, 0, -1]
    eng.set_site_windows("X", [])
    assert not eng.maintenance and eng.maintenance.inside(idx, ts).tolist() == [-1] * 4


@pytest.mark.parametrize("batch_size", [1, 3, 1000])
def test_replay_with_a_maintenance_file_gives_the_engine_result(tmp_path, batch_size: int) -> None:
    from rules.replay import ReplayError, read_maintenance, replay

    readings = tmp_path / "readings.jsonl"
    readings.write_bytes(b"".join(orjson.dumps({"site": "X", "sensor": s, "ts": T0 + t * S, "v": v}) + b"\n"
                                  for t, s, v in [(90, "G1", 60), (100, "G1", 60), (110, "G2", 60),
                                                  (150, "G1", 60), (210, "G1", 60)]))
    windows = tmp_path / "windows.jsonl"
    windows.write_bytes(orjson.dumps(record(7, 100, 300, ["G1"])) + b"\n\n"
                        + orjson.dumps(record(7, 100, 200, ["G1"], ended=True)) + b"\n")
    res = replay(make_config([]), readings, batch_size=batch_size, maintenance=read_maintenance(windows))
    assert [(w["subject"], (w["ts"] - T0) // S, w["level"]) for w in res.warnings if w["rule"] == "gas"] == [
        ("X/G1", 90, "red"), ("X/G2", 110, "red")]
    assert [(h["subject"], h["state"], h["detail"]["window"]) for h in res.health
            if h["check"] == "maintenance"] == [("X/G1", "start", "X#silence-7"), ("X/G1", "end", "X#silence-7")]
    assert res.counts["maintenance"] == 2  # 100 and 150; the window was ended at 200, so 210 counts
    # the same as a static window of that span: one engine, whichever way the window came
    static = replay(make_config([CALIBRATION]), readings, batch_size=batch_size)
    assert static.warnings == res.warnings and static.counts == res.counts
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(orjson.dumps(record(7, 0, 1)) + b"\n{\"site\": \"X\"}\n")
    with pytest.raises(ReplayError, match="bad.jsonl:2: not a maintenance record"):
        read_maintenance(bad)


@pytest.mark.parametrize("size", [1, 2, 1000])
def test_the_first_reading_after_the_window_ends_it_with_a_health_event(size: int) -> None:
    eng = Engine(make_config([CALIBRATION]), started_ms=T0)
    readings = [(90, "G1", 0), (100, "G1", 50), (150, "G1", 50), (199, "G1", 50), (200, "G1", 55), (210, "G1", 55)]
    health, warnings = [], []
    for i in range(0, len(readings), size):
        w, h = feed(eng, readings[i:i + size])
        warnings += w
        health += h
    assert [(x["state"], (x["ts"] - T0) // S) for x in health if x["check"] == "maintenance"] == [
        ("start", 100), ("end", 200)]
    end = [x for x in health if x["state"] == "end"][0]
    assert end["detail"]["window"] == "X#0" and end["detail"]["reason"].startswith("季度标定")
    assert warnings == [(200, "X/G1", "red")]
