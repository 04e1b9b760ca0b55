"""Sliding-window rain rules: table-driven tests of the pure engine, and hypothesis properties."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.models import LEVELS, Config, Sensor, Settings, Site, SmsSettings, ThresholdRule
from config.rules import RainRule
from formats.warning import episode_id
from rules.rain import BIN_MS, N_BINS, RainEngine, RainTable
from rules.threshold import ThresholdTable

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, on a 5-min bin boundary

# 1 h blue 35 / yellow 45 / red 80, 3 h orange 50, 24 h blue 100: small enough to reason about.
WINDOWS = [
    {
        "hours": 1,
        "ladder": [
            {"level": "blue", "value": 35},
            {"level": "yellow", "value": 45},
            {"level": "red", "value": 80},
        ],
    },
    {"hours": 3, "ladder": [{"level": "orange", "value": 50}]},
    {"hours": 24, "ladder": [{"level": "blue", "value": 100}]},
]


def make_config(
    input: str = "increment", deadband: float = 2.0, windows: list[dict] | None = None
) -> Config:
    rule = RainRule.model_validate(
        {"input": input, "windows": windows or WINDOWS, "deadband": deadband}
    )
    gas = Sensor(
        id="GT-1",
        quantity="combustible_gas",
        unit="%LEL",
        period_s=5,
        thresholds=[ThresholdRule(rule="g", ladder=[{"level": "red", "value": 50}])],
    )
    gauges = [
        Sensor(id=f"RAIN-{i}", quantity="rain_increment", unit="mm", period_s=300, rain=rule)
        for i in (1, 2)
    ]
    sites = [
        Site(
            id="X",
            name="x",
            kind="chemical",
            enterprise="e",
            region="320582",
            lat=30,
            lon=120,
            zone="Z",
            sensors=[gas],
        ),
        Site(
            id="RG",
            name="r",
            kind="rain",
            enterprise="e",
            region="330127",
            lat=30,
            lon=120,
            zone="Z",
            sensors=[gauges[0], gas.model_copy(update={"id": "GT-2"}), gauges[1]],
        ),
    ]
    return Config(
        settings=Settings(sms=SmsSettings(from_number="+8610690000110")),
        sites=sites,
        zones=[],
        recipients=[],
    )


Event = tuple[Any, ...]


def events(
    engine: RainEngine, sensors: list[int], ts: list[int], values: list[float]
) -> list[Event]:
    out = []
    for t in engine.process(
        np.asarray(sensors, dtype=np.int64),
        np.asarray(ts, dtype=np.int64),
        np.asarray(values, dtype=np.float64),
    ):
        e = engine.to_event(t, emitted_at=0)
        out.append(
            (e.subject, e.kind, e.level, e.ts - T0, e.detail["window_h"], e.value, e.threshold)
        )
    return out


def run(rows: list[tuple[float, float]], *, batch: int = 1000, **kw: Any) -> list[Event]:
    """Feed one gauge (minutes after T0, value) -> (kind, level, ms, window_h, value, threshold)."""
    engine = RainEngine(RainTable.from_config(make_config(**kw)))
    idx = engine.table.sensor_index[("RG", "RAIN-1")]
    ts = [T0 + round(m * MIN) for m, _ in rows]
    out: list[Event] = []
    for i in range(0, len(rows), batch):
        out += events(
            engine,
            [idx] * len(ts[i : i + batch]),
            ts[i : i + batch],
            [v for _, v in rows[i : i + batch]],
        )
    return [e[1:] for e in out]


S = "RG/RAIN-1"


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([(0, 34.99)], [], id="just-below-the-rung"),
        pytest.param([(0, 35.0)], [("raised", "blue", 0, 1, 35.0, 35.0)], id="exactly-at-the-rung"),
        pytest.param(
            [(0, 20), (60, 20)],
            [],
            id="a-reading-exactly-1h-later-has-the-first-out-of-its-1h-window",
        ),
        pytest.param(
            [(0, 20), (59.99, 20)],
            [("raised", "blue", 59.99 * MIN, 1, 40.0, 35.0)],
            id="just-inside-1h",
        ),
        pytest.param([(4.99, 20), (60.01, 20)], [], id="the-window-is-the-12-newest-5min-bins"),
        pytest.param(
            [(0, 30), (120, 25)],
            [("raised", "orange", 120 * MIN, 3, 55.0, 50.0)],
            id="3h-meets-while-1h-does-not",
        ),
        pytest.param(
            [(0, 50), (5, 40)],
            [("raised", "orange", 0, 3, 50.0, 50.0), ("escalated", "red", 5 * MIN, 1, 90.0, 80.0)],
            id="any-window-met-the-highest-level-wins",
        ),
        pytest.param(
            [(0, 36), (65, 0)],
            [
                ("raised", "blue", 0, 1, 36.0, 35.0),
                ("cleared", "normal", 65 * MIN, 24, 36.0, 100.0),
            ],
            id="1h-drains-clear-names-the-window-closest-to-holding",
        ),
        pytest.param(
            [(0, 35), (5, -3), (10, 0)],
            [("raised", "blue", 0, 1, 35.0, 35.0)],
            id="a-negative-increment-counts-as-0",
        ),
        pytest.param(
            [(0, 35), (5, float("nan")), (10, float("inf"))],
            [("raised", "blue", 0, 1, 35.0, 35.0)],
            id="non-finite-values-are-ignored",
        ),
        pytest.param(
            [(0, 2), (5, 33), (60, 0), (65, 0)],
            [
                ("raised", "blue", 5 * MIN, 1, 35.0, 35.0),
                ("cleared", "normal", 65 * MIN, 24, 35.0, 100.0),
            ],
            id="the-deadband-holds-exactly-at-rung-minus-deadband",
        ),
        pytest.param(
            [(0, 2.01), (5, 32.99), (60, 0)],
            [
                ("raised", "blue", 5 * MIN, 1, 35.0, 35.0),
                ("cleared", "normal", 60 * MIN, 1, 32.99, 35.0),
            ],
            id="below-the-deadband-clears",
        ),
        pytest.param(
            [(0, 1), (10, 99), (1445, 0)],
            [
                ("raised", "red", 10 * MIN, 1, 100.0, 80.0),
                ("deescalated", "blue", 1445 * MIN, 24, 99.0, 100.0),
            ],
            id="24h-window-keeps-a-reading-23h55-old",
        ),
        pytest.param(
            [(0, 1), (10, 99), (1450, 0)],
            [
                ("raised", "red", 10 * MIN, 1, 100.0, 80.0),
                ("cleared", "normal", 1450 * MIN, 1, 0.0, 80.0),
            ],
            id="24h-window-drops-a-reading-exactly-24h-old",
        ),
        pytest.param(
            [(0, 40), (1440, 1)],
            [("raised", "blue", 0, 1, 40.0, 35.0), ("cleared", "normal", 1440 * MIN, 1, 1.0, 35.0)],
            id="a-gap-of-24h-empties-the-ring-no-aliasing-of-slot-0",
        ),
        pytest.param(
            [(0, 99), (2875, 1)],  # 47 h 55 min: the old bin's slot is the oldest of the new ring
            [("raised", "red", 0, 1, 99.0, 80.0), ("cleared", "normal", 2875 * MIN, 1, 1.0, 80.0)],
            id="a-gap-empties-even-the-oldest-slot",
        ),
        pytest.param(
            [(0, 40), (5000, 1)],
            [("raised", "blue", 0, 1, 40.0, 35.0), ("cleared", "normal", 5000 * MIN, 1, 1.0, 35.0)],
            id="a-gap-of-days",
        ),
    ],
)
def test_increments(rows, expected):
    assert run(rows) == expected
    assert run(rows, batch=1) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param([(0, 500.0)], [], id="the-first-reading-only-sets-the-baseline"),
        pytest.param(
            [(0, 500.0), (5, 535.0)], [("raised", "blue", 5 * MIN, 1, 35.0, 35.0)], id="delta"
        ),
        pytest.param(
            [(0, 500.0), (5, 530.0), (10, 6.0)],
            [("raised", "blue", 10 * MIN, 1, 36.0, 35.0)],
            id="a-drop-is-a-reset-the-delta-is-the-value",
        ),
        pytest.param(
            [(0, 500.0), (5, 530.0), (10, 0.0), (15, 5.0)],
            [("raised", "blue", 15 * MIN, 1, 35.0, 35.0)],
            id="a-reset-to-zero",
        ),
        pytest.param(
            [(0, 100.0), (1445, 300.0), (1450, 310.0)], [], id="a-gap-over-24h-re-baselines"
        ),
        pytest.param(
            [(0, 100.0), (1435, 300.0)],
            [("raised", "red", 1435 * MIN, 1, 200.0, 80.0)],
            id="under-24h-the-delta-lands-in-the-reading-bin",
        ),
    ],
)
def test_counter(rows, expected):
    assert run(rows, input="counter") == expected
    assert run(rows, input="counter", batch=1) == expected


def test_event_fields_and_one_episode_from_raise_to_clear():
    engine = RainEngine(RainTable.from_config(make_config()))
    idx = engine.table.sensor_index[("RG", "RAIN-1")]
    ts = np.array([T0, T0 + 5 * MIN, T0 + 65 * MIN, T0 + 185 * MIN])
    evs = [
        engine.to_event(t, 7)
        for t in engine.process(np.full(4, idx), ts, np.array([50.0, 40.0, 0.0, 0.0]))
    ]
    assert [
        (e.kind, e.level, e.previous, e.detail["window_h"], e.value, e.threshold) for e in evs
    ] == [
        ("raised", "orange", "normal", 3, 50.0, 50.0),
        ("escalated", "red", "orange", 1, 90.0, 80.0),
        ("deescalated", "orange", "red", 3, 90.0, 50.0),  # the 1 h window has drained, 3 h holds
        ("cleared", "normal", "orange", 3, 0.0, 50.0),
    ]
    red = evs[1]
    assert (red.site, red.subject, red.rule, red.unit, red.ts, red.emitted_at) == (
        "RG",
        S,
        "rainfall",
        "mm",
        T0 + 5 * MIN,
        7,
    )
    assert {e.episode for e in evs} == {episode_id(S, "rainfall", T0)}
    assert red.detail == {
        "window_h": 1,
        "sums": {"1h": 90.0, "3h": 90.0, "6h": 90.0, "12h": 90.0, "24h": 90.0},
        "peak": "red",
        "raised_ts": T0,
        "quantity": "rain_increment",
    }
    assert evs[3].detail["peak"] == "red" and evs[3].detail["sums"]["24h"] == 90.0


def test_table_shares_the_threshold_sensor_index_and_skips_other_sensors():
    cfg = make_config()
    table = RainTable.from_config(cfg)
    assert table.sensor_index == ThresholdTable.from_config(cfg).sensor_index
    assert table.sensor == ["RAIN-1", "RAIN-2"] and list(table.rows_of_site) == ["RG"]
    assert (
        table.rungs.shape == (2, 5, 4)
        and np.isinf(table.rungs[0, 1, 0])
        and table.rungs[0, 1, 2] == 50
    )
    engine = RainEngine(table)
    gas = table.sensor_index[("X", "GT-1")]
    assert (
        engine.process(np.array([gas, gas]), np.array([T0, T0 + 1]), np.array([99.0, 99.0])) == []
    )
    assert engine.ignored_stale == 0 and (engine.state.last_ts == -1).all()


def test_duplicate_and_stale_readings_change_nothing():
    engine = RainEngine(RainTable.from_config(make_config()))
    idx = np.full(2, engine.table.sensor_index[("RG", "RAIN-1")])
    ts = np.array([T0, T0 + 5 * MIN])
    assert len(engine.process(idx, ts, np.array([20.0, 20.0]))) == 1
    before = engine.export_site("RG")
    assert engine.process(idx, ts, np.array([20.0, 20.0])) == []  # redelivery after a crash
    assert (
        engine.process(idx[:1], np.array([T0 + 4 * MIN]), np.array([50.0])) == []
    )  # late: older than last
    assert engine.export_site("RG") == before
    assert engine.ignored_stale == 3


def test_readings_in_any_order_within_a_batch():
    cfg = make_config()
    table = RainTable.from_config(cfg)
    sensors = [table.sensor_index[("RG", "RAIN-1")], table.sensor_index[("RG", "RAIN-2")]] * 6
    ts = [T0 + (i // 2) * 5 * MIN for i in range(12)]
    values = [10.0, 1.0] * 6
    ordered = events(RainEngine(table), sensors, ts, values)
    perm = np.random.default_rng(3).permutation(12)
    shuffled = events(
        RainEngine(table),
        [sensors[i] for i in perm],
        [ts[i] for i in perm],
        [values[i] for i in perm],
    )
    # RAIN-1: 10 mm per 5 min -> blue at 40 mm (1 h), orange at 50 (3 h); RAIN-2 stays dry
    assert ordered == shuffled and [e[:3] for e in ordered] == [
        (S, "raised", "blue"),
        (S, "escalated", "orange"),
    ]


def test_state_export_is_small_json_and_round_trips():
    cfg = make_config(input="counter")
    table = RainTable.from_config(cfg)
    a = RainEngine(table)
    idx = table.sensor_index[("RG", "RAIN-1")]
    a.process(
        np.full(3, idx),
        np.array([T0, T0 + 5 * MIN, T0 + 10 * MIN]),
        np.array([100.0, 120.2, 160.0]),
    )
    saved = orjson.loads(orjson.dumps(a.export_site("RG")))
    assert saved["RAIN-1|rainfall"] == {
        "last_ts": T0 + 10 * MIN,
        "counter": 160.0,
        "level": 3,
        "episode_ts": T0 + 10 * MIN,
        "peak": 3,
        "bins": [[0, 39.8], [1, 20.2]],
    }
    assert saved["RAIN-2|rainfall"]["bins"] == [] and saved["RAIN-2|rainfall"]["counter"] is None
    b = RainEngine(table)
    b.import_site("RG", saved)
    assert b.export_site("RG") == saved
    for name in ("bins", "sums", "last_ts", "counter", "level", "episode_ts", "peak"):
        assert np.array_equal(getattr(a.state, name), getattr(b.state, name)), name
    b.import_site("RG", {})  # a site without saved state starts fresh
    assert (b.state.bins == 0).all() and (b.state.last_ts == -1).all()


def test_window_buffer_and_state_bytes_per_gauge():
    state = RainEngine(RainTable.from_config(make_config())).state
    per_row = {name: getattr(state, name).nbytes // 2 for name in state.__dataclass_fields__}
    assert per_row.pop("bins") == N_BINS * 4 == 1152  # the window buffer: 24 h of 5-min bins
    assert per_row.pop("sums") == 5 * 8  # running window sums, rebuilt from the bins on import
    assert sum(per_row.values()) == 26


# ---------------------------------------------------------------------------------- properties


def plain_levels(
    input: str, deadband: float, readings: list[tuple[int, int, float]]
) -> list[Event]:
    """A per-reading dict-of-bins model of the same semantics, for comparison."""
    rule = RainRule.model_validate({"input": input, "windows": WINDOWS, "deadband": deadband})
    state: dict[int, dict[str, Any]] = {}
    out = []
    for sensor, ts, v in sorted(readings, key=lambda r: (r[1], r[0])):
        s = state.setdefault(sensor, {"bins": {}, "last": -1, "counter": None, "level": 0})
        if ts <= s["last"] or not np.isfinite(v):
            continue
        head, v = ts // BIN_MS, max(v, 0.0)
        gap = s["last"] >= 0 and head - s["last"] // BIN_MS >= N_BINS
        if input == "counter":
            rain = (
                0.0
                if s["counter"] is None or gap
                else (v - s["counter"] if v >= s["counter"] else v)
            )
            s["counter"] = v
        else:
            rain = v
        s["last"] = ts
        s["bins"] = {b: r for b, r in s["bins"].items() if b > head - N_BINS}
        s["bins"][head] = round(s["bins"].get(head, 0.0) + rain, 2)
        sums = {
            w["hours"]: round(sum(r for b, r in s["bins"].items() if b > head - w["hours"] * 12), 2)
            for w in WINDOWS
        }
        new = 0
        for w in rule.windows:
            for step in w.ladder:
                rank = LEVELS.index(step.level)
                if sums[w.hours] >= round(step.value - (deadband if s["level"] >= rank else 0), 2):
                    new = max(new, rank)
        if new != s["level"]:
            out.append((sensor, ts, LEVELS[s["level"]], LEVELS[new]))
            s["level"] = new
    return sorted(out, key=lambda e: (e[1], e[0]))


STEPS = st.one_of(
    st.just(5 * MIN),
    st.just(5 * MIN),
    st.integers(1_000, 20 * MIN),
    st.integers(55 * MIN, 65 * MIN),
    st.integers(2 * HOUR, 4 * HOUR),
    st.just(24 * HOUR),
    st.just(25 * HOUR),
)
RAIN = st.sampled_from([0.0, 0.2, 1.0, 2.6, 5.6, 8.0, 12.0, 17.5, 33.0])


@st.composite
def stream_and_kind(draw: Any) -> tuple[list[tuple[int, int, float]], str]:
    """Two gauges, increasing timestamps; increments or a counter that resets now and then."""
    kind = draw(st.sampled_from(["increment", "counter"]))
    out = []
    for sensor in (0, 1):
        t, total = T0 + draw(st.integers(0, 10 * MIN)), 0.0
        for _ in range(draw(st.integers(0, 60))):
            t += draw(STEPS)
            rain = draw(RAIN)
            if kind == "counter":
                total = (
                    rain if draw(st.integers(0, 15)) == 0 else round(total + rain, 2)
                )  # a reset now and then
            out.append((sensor, t, total if kind == "counter" else rain))
    out.sort(key=lambda r: (r[1], r[0]))
    for _ in range(draw(st.integers(0, 3))):  # redelivered readings, later in the stream
        if out:
            i = draw(st.integers(0, len(out) - 1))
            out.insert(draw(st.integers(i + 1, len(out))), out[i])
    return out, kind


def replay(
    rows: list[tuple[int, int, float]], kind: str, batch: int, restart_at: int | None = None
) -> list[bytes]:
    """Every event as JSON, feeding ``batch`` readings at a time; at ``restart_at`` the engine is
    replaced by a fresh one that imports the exported state (a worker restart)."""
    table = RainTable.from_config(make_config(input=kind))
    idx = [table.sensor_index[("RG", f"RAIN-{i}")] for i in (1, 2)]
    engine = RainEngine(table)
    out: list[bytes] = []
    for i in range(0, len(rows), batch):
        if restart_at is not None and i >= restart_at:  # a worker restart: state via JSON only
            saved = orjson.loads(orjson.dumps(engine.export_site("RG")))
            engine = RainEngine(table)
            engine.import_site("RG", saved)
            restart_at = None
        part = rows[i : i + batch]
        got = engine.process(
            np.array([idx[s] for s, _, _ in part]),
            np.array([t for _, t, _ in part]),
            np.array([v for _, _, v in part]),
        )
        out += [engine.to_event(t, emitted_at=0).to_json() for t in got]
    return out


@settings(max_examples=80, deadline=None)
@given(stream_and_kind(), st.sampled_from([1, 7, 1000]), st.integers(0, 120))
def test_events_do_not_depend_on_batch_size_or_a_restart(data, batch, restart_at):
    rows, kind = data
    reference = replay(rows, kind, batch=1000)
    assert replay(rows, kind, batch=batch) == reference
    assert replay(rows, kind, batch=7, restart_at=restart_at) == reference
    assert replay(rows, kind, batch=1, restart_at=restart_at) == reference


@settings(max_examples=80, deadline=None)
@given(stream_and_kind())
def test_engine_agrees_with_a_plain_per_reading_model(data):
    rows, kind = data
    got = [orjson.loads(e) for e in replay(rows, kind, batch=7)]
    names = {0: S, 1: "RG/RAIN-2"}
    assert [(e["subject"], e["ts"], e["previous"], e["level"]) for e in got] == [
        (names[s], ts, old, new) for s, ts, old, new in plain_levels(kind, 2.0, rows)
    ]
