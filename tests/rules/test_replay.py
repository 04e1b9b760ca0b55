"""Offline replay: file formats, malformed lines, exact counts, and determinism (any batch size)."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from config import example_dir
from config.models import Config, LadderStep, Sensor, Settings, Site, SmsSettings, ThresholdRule
from rules.batch import Batch
from rules.engine import Engine
from rules.replay import Malformed, ReplayError, read_readings, replay, replay_command

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def _rule(direction: str, values: tuple[float, ...], deadband: float, min_duration_s: float = 0) -> ThresholdRule:
    return ThresholdRule(rule="r", direction=direction, deadband=deadband, min_duration_s=min_duration_s,
                         ladder=[LadderStep(level=lv, value=v) for lv, v in zip(("yellow", "orange", "red"), values)])


def make_config() -> Config:
    """X/S1 gas (10/25/50, deadband 2), X/S2 phreatic depth (low 4.8/4.4/4.0), Y/S3 gas with a
    5 s period (offline after 15 s) and a 10 s minimum duration."""
    gas = _rule("high", (10, 25, 50), 2.0)
    s1 = Sensor(id="S1", quantity="combustible_gas", unit="%LEL", period_s=3600, thresholds=[gas])
    s2 = Sensor(id="S2", quantity="phreatic_depth", unit="m", period_s=3600,
                thresholds=[_rule("low", (4.8, 4.4, 4.0), 0.1)])
    s3 = Sensor(id="S3", quantity="combustible_gas", unit="%LEL", period_s=5,
                thresholds=[_rule("high", (10, 25, 50), 2.0, min_duration_s=10)])
    site: dict[str, Any] = {"kind": "chemical", "enterprise": "e", "region": "320582", "lat": 30, "lon": 120,
                            "zone": "Z"}
    return Config(settings=Settings(sms=SmsSettings(from_number="+8610690000110")), zones=[], recipients=[],
                  sites=[Site(id="X", name="x", sensors=[s1, s2], **site),
                         Site(id="Y", name="y", sensors=[s3], **site)])


CONFIG = make_config()


def write_jsonl(path: Path, rows: list[dict[str, Any] | str]) -> Path:
    path.write_bytes(b"".join((r.encode() if isinstance(r, str) else orjson.dumps(r)) + b"\n" for r in rows))
    return path


def events(result: Any) -> tuple[list[bytes], list[bytes]]:
    return [orjson.dumps(w) for w in result.warnings], [orjson.dumps(h) for h in result.health]


# -- one hand-built file: every kind of line, exact counts ---------------------------------------

HAND = [
    {"site": "X", "sensor": "S1", "ts": T0, "v": 5},  # 1 normal
    {"site": "X", "sensor": "S1", "ts": T0 + 1000, "v": 12},  # 2 raised yellow
    "",  # 3 blank: ignored
    {"site": "X", "sensor": "S1", "ts": T0 + 1000, "v": 60},  # 4 duplicate (redelivery): ignored
    '{"site": "X",',  # 5 malformed: not JSON
    {"site": "X", "sensor": "S1", "ts": "2023-11-14T22:13:22Z", "v": 30},  # 6 escalated orange (T0 + 2000)
    {"site": "X", "sensor": "S1", "ts": T0 + 500, "v": 99},  # 7 late: rejected
    {"site": "X", "sensor": "S1", "ts": T0 + 3000, "v": 55, "q": 1},  # 8 bad quality
    {"site": "X", "sensor": "NOPE", "ts": T0 + 3000, "v": 1},  # 9 unknown: rejected
    {"site": "X", "sensor": "S2", "ts": T0 + 3000, "v": 4.0},  # 10 raised red (low rule, exactly at)
    {"site": "X", "sensor": "S1", "ts": T0 + 4000},  # 11 malformed: no v
    {"site": "X", "sensor": "S1", "ts": 1.5, "v": 1},  # 12 malformed: float ts
    "[1, 2]",  # 13 malformed: not an object
    {"site": "X", "sensor": "S1", "ts": T0 + 4000, "v": True},  # 14 malformed: boolean v
    {"site": "X", "sensor": "S1", "ts": "yesterday", "v": 1},  # 15 malformed: ts not RFC 3339
    {"site": "Y", "sensor": "S3", "ts": T0 + 4000, "v": 60},  # 16 red, but min duration 10 s: nothing
    {"site": "X", "sensor": "S1", "ts": T0 + 5000, "v": 0},  # 17 cleared
    {"site": "X", "sensor": "S1", "ts": T0 + 6000, "v": 1, "q": 0},  # 18 normal
    {"site": "Y", "sensor": "S3", "ts": T0 + 14000, "v": 61},  # 19 held 10 s: raised red
]


def test_hand_built_file_counts_are_exact(tmp_path: Path) -> None:
    res = replay(CONFIG, write_jsonl(tmp_path / "r.jsonl", HAND))
    counts = {k: v for k, v in res.counts.items() if k not in ("quarantined",)}  # the engine's business
    assert counts == {"readings": 12, "malformed": 6, "evaluated": 8, "stale": 1, "late": 1, "unknown": 1,
                      "bad_quality": 1, "rejected": 2, "warnings": 5, "health": 0, "episodes": 3,
                      "maintenance": 0, "duplicates": 0}
    assert [(w["subject"], w["kind"], w["level"], w["ts"] - T0) for w in res.warnings] == [
        ("X/S1", "raised", "yellow", 1000), ("X/S1", "escalated", "orange", 2000),
        ("X/S2", "raised", "red", 3000), ("X/S1", "cleared", "normal", 5000), ("Y/S3", "raised", "red", 14000)]
    assert all(w["emitted_at"] == w["ts"] for w in res.warnings)  # never the wall clock
    assert res.by_level == {"blue": 0, "yellow": 1, "orange": 1, "red": 2}
    assert res.by_site == {"X": {"episodes": 2, "blue": 0, "yellow": 1, "orange": 1, "red": 1},
                           "Y": {"episodes": 1, "blue": 0, "yellow": 0, "orange": 0, "red": 1}}
    assert res.by_kind == {"cleared": 1, "escalated": 1, "raised": 3}
    assert [m.line for m in res.rejected] == [7, 9]
    assert res.rejected[0].reason.startswith("late reading") and "X/S1" in res.rejected[0].reason
    assert res.rejected[1] == Malformed(9, "unknown sensor 'NOPE' at site 'X'")
    assert [m.line for m in res.malformed] == [5, 11, 12, 13, 14, 15]
    reasons = {m.line: m.reason for m in res.malformed}
    assert reasons[5].startswith("not JSON")
    assert reasons[11] == "v is missing"
    assert "float" in reasons[12]
    assert reasons[13] == "a reading must be a JSON object, got list"
    assert reasons[14] == "v must be a finite number, got True"
    assert "not an RFC 3339 timestamp" in reasons[15]
    assert (res.first_ts, res.last_ts) == (T0, T0 + 14000)


def test_replay_equals_the_engine_fed_one_reading_at_a_time(tmp_path: Path) -> None:
    res = replay(CONFIG, write_jsonl(tmp_path / "r.jsonl", HAND), batch_size=1000)
    engine, expected = Engine(CONFIG), []
    for r in HAND:
        if isinstance(r, dict) and isinstance(r.get("ts"), int) and isinstance(r.get("v"), int | float) \
                and not isinstance(r.get("v"), bool):
            ts = np.asarray([r["ts"]], dtype=np.int64)
            out = engine.process(Batch([r["site"]], [r["sensor"]], ts, np.asarray([float(r["v"])]),
                                       np.asarray([r.get("q", 0)], dtype=np.int64)), int(ts[0]))
            expected += [w.subject + w.kind + w.level + str(w.ts) for w in out.warnings]
        elif isinstance(r, dict) and r.get("ts") == "2023-11-14T22:13:22Z":
            out = engine.process(Batch(["X"], ["S1"], np.asarray([T0 + 2000]), np.asarray([30.0]),
                                       np.asarray([0])), T0 + 2000)
            expected += [w.subject + w.kind + w.level + str(w.ts) for w in out.warnings]
    assert [w["subject"] + w["kind"] + w["level"] + str(w["ts"]) for w in res.warnings] == expected


def test_jsonl_and_csv_give_the_same_events(tmp_path: Path) -> None:
    rows = [r for r in HAND if isinstance(r, dict) and "v" in r and not isinstance(r["v"], bool)
            and not isinstance(r["ts"], float) and r["ts"] != "yesterday"]
    csv_lines = ["sensor,ts,site,v,q,comment"]  # any column order; extra columns are ignored
    csv_lines += [f"{r['sensor']},{r['ts']},{r['site']},{r['v']},{r.get('q', '')},x" for r in rows]
    (tmp_path / "r.csv").write_text("\n".join(csv_lines) + "\n")
    a = replay(CONFIG, write_jsonl(tmp_path / "r.jsonl", rows))
    b = replay(CONFIG, tmp_path / "r.csv")
    assert events(a) == events(b) and a.counts == b.counts
    assert a.counts["warnings"] == 5 and a.counts["malformed"] == 0


def test_csv_malformed_rows_and_a_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_bytes("\ufeffsite,sensor,ts,v\n".encode() + (
        f"X,S1,{T0},12\n"
        f"X,S1,{T0 + 1000}\n"  # too few columns
        f"X,S1,{T0 + 2000},abc\n"  # v not a number
        f"X,S1,{T0 + 3000},nan\n"  # not finite
        f"X,S1,2023-11-14T22:13:24+00:00,30\n").encode())
    res = replay(CONFIG, tmp_path / "r.csv")
    assert [(m.line, m.reason) for m in res.malformed] == [
        (3, "expected 4 columns, got 3"), (4, "v must be a number, got 'abc'"),
        (5, "v must be a finite number, got nan")]
    assert [(w["kind"], w["level"], w["ts"] - T0) for w in res.warnings] == [
        ("raised", "yellow", 0), ("escalated", "orange", 4000)]


def test_csv_without_the_required_header_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text("site,sensor,value\nX,S1,1\n")
    with pytest.raises(ReplayError, match=r"line 1: .*missing \['ts', 'v'\]"):
        replay(CONFIG, tmp_path / "r.csv")
    with pytest.raises(ReplayError, match="cannot read"):
        replay(CONFIG, tmp_path / "missing.jsonl")


def test_reads_in_chunks_with_line_numbers_and_gzip(tmp_path: Path) -> None:
    rows = [{"site": "X", "sensor": "S1", "ts": T0 + i, "v": i} for i in range(10)]
    path = tmp_path / "r.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in rows[:5]) + b"bad\n"
                                   + b"".join(orjson.dumps(r) + b"\n" for r in rows[5:])))
    bad: list[Malformed] = []
    progress: list[tuple[int, int]] = []
    chunks = list(read_readings(path, chunk_size=4, on_malformed=bad.append,
                                on_progress=lambda done, total: progress.append((done, total))))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert [c.line.tolist() for c in chunks] == [[1, 2, 3, 4], [5, 7, 8, 9], [10, 11]]
    assert chunks[1].ts.tolist() == [T0 + 4, T0 + 5, T0 + 6, T0 + 7]
    assert [m.line for m in bad] == [6]
    assert progress[-1][0] == progress[-1][1] == path.stat().st_size


# -- determinism: batch size, file order ----------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_a_late_reading_is_late_whatever_the_batch(tmp_path: Path, batch_size: int) -> None:
    """A reading that comes after a newer one of its sensor is late (rejected) in a batch of 1000
    as in a batch of 1: file order is arrival order."""
    rows = [{"site": "X", "sensor": "S1", "ts": T0 + 10_000, "v": 5},
            {"site": "X", "sensor": "S1", "ts": T0 + 5_000, "v": 60}]  # older: late
    res = replay(CONFIG, write_jsonl(tmp_path / "r.jsonl", rows), batch_size=batch_size)
    assert res.warnings == [] and res.counts["rejected"] == 1 and [m.line for m in res.rejected] == [2]


def test_batch_size_does_not_change_anything_on_a_small_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = [{"site": s, "sensor": x, "ts": T0 + 5000 * i + int(rng.integers(0, 3000)),
             "v": float(rng.choice([0, 4.0, 4.5, 5, 9.9, 10, 12, 26, 51]))}
            for i in range(400) for s, x in (("X", "S1"), ("X", "S2"), ("Y", "S3")) if rng.random() < 0.8]
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    results = [replay(CONFIG, path, batch_size=b) for b in (1, 7, 1000)]
    assert results[0].counts["warnings"] > 10 and results[0].counts["health"] > 0  # offline faults too
    for other in results[1:]:
        assert events(other) == events(results[0])
        assert other.summary() == results[0].summary()


readings = st.lists(
    st.tuples(
        st.sampled_from([("X", "S1"), ("X", "S2"), ("Y", "S3"), ("X", "NOPE")]),
        st.integers(0, 300).map(lambda k: T0 + 1000 * k),  # duplicates and out-of-order readings
        st.sampled_from([0.0, 3.9, 4.0, 4.4, 4.5, 4.8, 5.0, 8.0, 9.99, 10.0, 12.0, 23.0, 25.0, 49.0, 50.0, 70.0]),
        st.sampled_from([0, 0, 0, 0, 1]),
    ),
    max_size=120,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings)
def test_replay_does_not_depend_on_the_batch_size(rows: list[tuple[tuple[str, str], int, float, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_jsonl(Path(tmp) / "r.jsonl", [{"site": s, "sensor": x, "ts": t, "v": v, "q": q}
                                                   for (s, x), t, v, q in rows])
        results = [replay(CONFIG, path, batch_size=b) for b in (1, 7, 1000)]
    for other in results[1:]:
        assert events(other) == events(results[0])
        assert other.summary() == results[0].summary()


# -- the command ---------------------------------------------------------------------------------


def test_replay_command_prints_events_and_a_summary(tmp_path: Path) -> None:
    rows: list[dict[str, Any] | str] = [
        {"site": "CH-001", "sensor": "GT-101", "ts": T0 + 5000 * i, "v": 30.0 + (i % 3) * 0.1} for i in range(10)]
    rows.insert(3, "not json")
    path = write_jsonl(tmp_path / "r.jsonl", rows)
    app = typer.Typer()
    app.command()(replay_command)
    result = CliRunner().invoke(app, [str(path), "--config", str(example_dir()), "--batch-size", "4"])
    assert result.exit_code == 0, result.output
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert any(e.get("subject") == "CH-001/GT-101" and e.get("kind") == "raised" for e in printed)
    assert "warnings by site and level" in result.stderr
    assert "r.jsonl:4: malformed, skipped: not JSON" in result.stderr
    quiet = CliRunner().invoke(app, [str(path), "--config", str(example_dir()), "--summary-only"])
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_a_synthetic_rain_season_replays_the_same_from_jsonl_and_csv_at_any_batch_size(tmp_path: Path) -> None:
    from config import load_config
    from hazwatch.synth import synth_rain, write_rain_config

    made = synth_rain(tmp_path / "rain.jsonl", gauges=3, days=3, storms=2, seed=1)
    synth_rain(tmp_path / "rain.csv", gauges=3, days=3, storms=2, seed=1)
    write_rain_config(tmp_path / "cfg", made)
    config = load_config(tmp_path / "cfg")
    assert [s.id for s in config.sites] == ["RG-001", "RG-002", "RG-003"]
    assert made["rows"] == 3 * 2 * 3 * 288  # gauges x sensors x days x 5-minute reports
    a = replay(config, tmp_path / "rain.jsonl", batch_size=7)
    b = replay(config, tmp_path / "rain.csv")
    assert a.counts["readings"] == made["rows"] and a.counts["rejected"] == a.counts["malformed"] == 0
    assert events(a) == events(b) and a.summary() == b.summary()
