"""The simulator: the pure plan (contract, time, determinism, warning sequences), real MQTT runs."""

from __future__ import annotations

import math
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from config import Config
from config.models import LEVELS, ThresholdRule
from config.rules import RainRule
from sensors.scenario import Scenario, ScenarioSite, load_scenario, scenario_names
from sensors.signals import BUCKET_MM, HOUR_MS
from sensors.simulator import PlannedMessage, plan, run

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ["chemical", "tailings", "rain", "all", "city"]
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
ID = r"[A-Za-z0-9_.-]{1,64}"
READING_TOPIC = re.compile(rf"^hw/v1/({ID})/({ID})/reading$")
BATCH_TOPIC = re.compile(rf"^hw/v1/({ID})/batch$")

Readings = dict[tuple[str, str], list[tuple[int, float]]]


def readings_of(messages: Iterable[PlannedMessage]) -> Readings:
    """Decode planned messages per the MQTT contract into (site, sensor) -> [(ts, v)]."""
    out: Readings = defaultdict(list)
    for m in messages:
        body = orjson.loads(m.payload)
        if match := READING_TOPIC.match(m.topic):
            out[(match[1], match[2])].append((body["ts"], body["v"]))
        elif match := BATCH_TOPIC.match(m.topic):
            for item in body["readings"]:
                out[(match[1], item["sensor"])].append((item["ts"], item["v"]))
        else:
            raise AssertionError(f"topic outside the contract: {m.topic}")
    return out


def expectations(name: str) -> dict[str, list[str]]:
    """The ``# expect SITE/SENSOR: level level ...`` lines at the top of a scenario file; ``-``
    for a sensor that must raise nothing."""
    text = (
        resources.files("sensors").joinpath("scenarios", f"{name}.yaml").read_text(encoding="utf-8")
    )
    found = re.findall(r"^#\s*expect\s+(\S+/\S+):\s*(.*)$", text, flags=re.MULTILINE)
    return {subject: [] if levels.strip() == "-" else levels.split() for subject, levels in found}


def reference_levels(rule: ThresholdRule, readings: list[tuple[int, float]]) -> list[str]:
    """A deliberately plain, per-reading evaluator of ladder semantics, independent of rules/.

    A rung is reached AT its value (>= high, <= low); a level is entered at the first reading
    whose ts minus the ts of the first reading of the unbroken run reaching that rung is at least
    min_duration; it is left when the value is beyond the rung by more than the deadband, down to
    the highest lower rung the value has not left by more than the deadband.
    """
    sign = 1.0 if rule.direction == "high" else -1.0
    rungs = [sign * step.value for step in rule.ladder]
    names = [step.level for step in rule.ladder]
    min_ms = rule.min_duration_s * 1000
    since: list[int | None] = [None] * len(rungs)
    level = 0  # 0 = normal, k = names[k - 1]
    changes: list[str] = []
    for ts, raw in readings:
        v = sign * raw
        for k, rung in enumerate(rungs):
            since[k] = (since[k] if since[k] is not None else ts) if v >= rung else None
        entered = max(
            (k + 1 for k, s in enumerate(since) if s is not None and ts - s >= min_ms), default=0
        )
        new = level
        if entered > level:
            new = entered
        elif level and v < rungs[level - 1] - rule.deadband:
            kept = max(
                (k + 1 for k in range(level - 1) if v >= rungs[k] - rule.deadband), default=0
            )
            new = max(kept, entered)
        if new != level:
            changes.append(names[new - 1] if new else "normal")
            level = new
    return changes


def reference_rain_levels(rule: RainRule, readings: list[tuple[int, float]]) -> list[str]:
    """A deliberately plain, per-reading evaluator of rain rules, independent of rules/.

    Each reading is first turned into the rain it reports (increment; or counter delta, the
    first counter reading a baseline, a drop a reset). The W-hour sum at a reading stamped ts
    adds the rain of the readings stamped in (ts - W h, ts]. A rung is met at or above its value,
    or, while the level is at or above the rung's level, at or above value - deadband; the level
    is the highest level met in any window.
    """
    rain: list[tuple[int, float]] = []
    last: float | None = None
    for ts, v in readings:
        if rule.input == "counter":
            rain.append((ts, 0.0 if last is None else (v - last if v >= last else v)))
            last = v
        else:
            rain.append((ts, max(v, 0.0)))
    level = 0
    changes: list[str] = []
    for ts, _ in rain:
        new = 0
        for window in rule.windows:
            total = round(sum(r for t, r in rain if ts - window.hours * HOUR_MS < t <= ts), 6)
            for step in window.ladder:
                rank = LEVELS.index(step.level)
                if total >= step.value - (rule.deadband if level >= rank else 0.0):
                    new = max(new, rank)
        if new != level:
            changes.append(LEVELS[new])
            level = new
    return changes


# ------------------------------------------------------------------------------ pure plan


def test_packaged_scenarios(cfg: Config) -> None:
    assert scenario_names() == sorted(SCENARIOS)
    for name in SCENARIOS:
        assert load_scenario(name, cfg).name == name


def test_plan_is_deterministic_for_a_seed(cfg: Config) -> None:
    scenario = load_scenario("all", cfg)
    first = plan(cfg, scenario, start_ms=START_MS, seed=7)
    assert first == plan(cfg, scenario, start_ms=START_MS, seed=7)
    assert first != plan(cfg, scenario, start_ms=START_MS, seed=8)
    # One site's noise does not depend on which other sites run with it.
    chemical = plan(cfg, load_scenario("chemical", cfg), start_ms=START_MS, seed=7)
    assert [m for m in first if "/CH-001/" in m.topic] == chemical


@pytest.mark.parametrize("name", SCENARIOS)
def test_payloads_follow_the_mqtt_contract(cfg: Config, name: str) -> None:
    scenario = load_scenario(name, cfg)
    modes = {b.site: b.mode for b in scenario.sites}
    messages = plan(cfg, scenario, start_ms=START_MS)
    assert messages
    for m in messages:
        assert (m.qos, m.retain) == (1, False)
        body = orjson.loads(m.payload)
        if match := READING_TOPIC.match(m.topic):
            assert modes[match[1]] == "single"
            assert set(body) == {"ts", "v"}
            items = [{"sensor": match[2], **body}]
        else:
            match = BATCH_TOPIC.match(m.topic)
            assert match, m.topic
            assert modes[match[1]] == "batch" and set(body) == {"readings"} and body["readings"]
            items = body["readings"]
            assert all(set(i) == {"sensor", "ts", "v"} for i in items)
        assert m.readings == len(items)
        for item in items:
            assert cfg.sensor(match[1], item["sensor"]) is not None
            assert type(item["ts"]) is int
            assert isinstance(item["v"], float) and math.isfinite(item["v"])
            lo, hi = cfg.sensor(match[1], item["sensor"]).range or (-math.inf, math.inf)
            assert lo <= item["v"] <= hi


@pytest.mark.parametrize("name", SCENARIOS)
def test_timestamps_increase_per_sensor_and_lie_in_the_past(cfg: Config, name: str) -> None:
    scenario = load_scenario(name, cfg)
    messages = plan(cfg, scenario)
    now_ms = time.time_ns() // 1_000_000
    speed = {b.site: b.speed for b in scenario.sites}
    assert [m.wall_s for m in messages] == sorted(m.wall_s for m in messages)
    for (site, sensor), rows in readings_of(messages).items():
        ts = [t for t, _ in rows]
        assert all(a < b for a, b in pairwise(ts)), f"{site}/{sensor} not strictly increasing"
        assert ts[-1] <= now_ms
        assert now_ms - ts[0] <= cfg.settings.ingest.max_age_s * 1000
        period_ms = cfg.sensor(site, sensor).period_s * 1000
        assert now_ms - ts[-1] <= 2 * period_ms + 60_000, "the last reading is about now"
        assert ts[-1] - ts[0] <= speed[site] * 1000 * 80
    # wall_s is event time since the site's first reading, divided by speed.
    first: dict[str, int] = {}
    for m in messages:
        site = m.topic.split("/")[2]
        t = next(iter(readings_of([m]).values()))[0][0]
        first.setdefault(site, t)
        assert m.wall_s == pytest.approx((t - first[site]) / speed[site] / 1000)


def test_all_runs_within_80_wall_seconds(cfg: Config) -> None:
    scenario = load_scenario("all", cfg)
    assert plan(cfg, scenario, start_ms=START_MS)[-1].wall_s <= 80
    assert max(b.wall_s for b in scenario.sites) <= 80


def test_city_is_all_and_every_other_site_quiet(cfg: Config) -> None:
    city = load_scenario("city", cfg)
    together = load_scenario("all", cfg)
    assert list(city.sites[:3]) == list(together.sites)
    assert sorted(b.site for b in city.sites) == sorted(s.id for s in cfg.sites)  # the whole city reports
    assert all(len(b.phases) == 1 and not b.phases[0].values for b in city.sites[3:])
    assert plan(cfg, city, start_ms=START_MS)[-1].wall_s <= 80
    assert max(b.wall_s for b in city.sites) <= 80


def test_all_is_the_three_site_scenarios_together(cfg: Config) -> None:
    together = load_scenario("all", cfg)
    singles = [load_scenario(n, cfg).sites[0] for n in ("chemical", "tailings", "rain")]
    assert list(together.sites) == singles
    union = {**expectations("chemical"), **expectations("tailings"), **expectations("rain")}
    assert expectations("all") == union


def _ruled(cfg: Config, scenario: Scenario) -> dict[str, list[ThresholdRule | RainRule]]:
    """subject -> its threshold and rain rules, for every published sensor that has one."""
    out: dict[str, list[ThresholdRule | RainRule]] = {}
    for site, sensor in readings_of(plan(cfg, scenario, start_ms=START_MS)):
        x = cfg.sensor(site, sensor)
        rules: list[ThresholdRule | RainRule] = [*x.thresholds, *([x.rain] if x.rain else [])]
        if rules:
            out[f"{site}/{sensor}"] = rules
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("name", SCENARIOS)
def test_reference_ladder_gives_the_documented_sequence(cfg: Config, name: str, seed: int) -> None:
    scenario = load_scenario(name, cfg)
    expected = expectations(name)
    rules = _ruled(cfg, scenario)
    assert set(expected) == set(rules), "every subject with a rule has one # expect line"
    readings = readings_of(plan(cfg, scenario, start_ms=START_MS + seed * 7_919_000, seed=seed))
    for subject, ruled in rules.items():
        site, sensor = subject.split("/")
        rows = readings[(site, sensor)]
        if expected[subject]:  # a documented sequence: of the sensor's one rule
            assert len(ruled) == 1, "the scenarios document one rule per sensor that changes level"
            assert expected[subject][-1] == "normal", f"{subject} ends back at normal"
        for rule in ruled:  # "-": no rule of the sensor raises anything
            if isinstance(rule, RainRule):
                assert reference_rain_levels(rule, rows) == expected[subject], subject
            else:
                assert reference_levels(rule, rows) == expected[subject], subject


def test_reference_evaluator_itself() -> None:
    rule = ThresholdRule.model_validate(
        {
            "rule": "r",
            "ladder": [{"level": "yellow", "value": 10}, {"level": "red", "value": 20}],
            "deadband": 2,
            "min_duration_s": 10,
        }
    )
    s = 1000
    # reached AT the value, after 10 s; a 5 s spike raises nothing; 9 holds yellow (deadband).
    rows = [
        (0, 10),
        (5 * s, 25),
        (10 * s, 10),
        (15 * s, 9),
        (20 * s, 20),
        (25 * s, 21),
        (30 * s, 20),
        (35 * s, 17.9),
        (40 * s, 7.9),
    ]
    assert reference_levels(rule, rows) == ["yellow", "red", "yellow", "normal"]
    low = ThresholdRule.model_validate(
        {
            "rule": "r",
            "direction": "low",
            "ladder": [{"level": "yellow", "value": 5}],
            "deadband": 2,
        }
    )
    assert reference_levels(low, [(0, 6), (1, 5), (2, 6.5), (3, 7.01)]) == ["yellow", "normal"]


@pytest.mark.parametrize(
    ("kind", "rows", "expected"),
    [
        # 1 h blue 10 / red 20, 3 h yellow 16, deadband 1; (minutes, mm)
        pytest.param("increment", [(0, 10.0)], ["blue"], id="exactly-at-the-rung"),
        pytest.param(
            "increment", [(0, 9.0), (60, 1.0)], [], id="1h-edge-excludes-the-reading-1h-older"
        ),
        pytest.param("increment", [(0, 9.0), (59, 1.0)], ["blue"], id="inside-1h"),
        pytest.param(
            "increment", [(0, 8.0), (70, 8.0)], ["yellow"], id="3h-meets-while-1h-does-not"
        ),
        pytest.param(
            "increment", [(0, 10.0), (5, -3.0), (10, 0.0)], ["blue"], id="negative-increment-is-0"
        ),
        pytest.param(
            "increment",
            [(0, 6.0), (10, 4.0), (65, 5.0)],
            ["blue"],
            id="deadband-holds-at-rung-minus-1",
        ),
        pytest.param(
            "increment",
            [(0, 6.0), (10, 4.0), (65, 4.9)],
            ["blue", "normal"],
            id="below-deadband-clears",
        ),
        pytest.param(
            "increment",
            [(0, 20.0), (5, 0.0), (60, 0.0), (185, 0.0)],
            ["red", "yellow", "normal"],
            id="windows-drain-in-turn",
        ),
        pytest.param(
            "counter",
            [(0, 500.0), (5, 509.0), (10, 510.0), (15, 3.0)],
            ["blue"],
            id="counter-baseline-then-reset",
        ),
    ],
)
def test_reference_rain_evaluator_itself(
    kind: str, rows: list[tuple[int, float]], expected: list[str]
) -> None:
    rule = RainRule.model_validate(
        {
            "input": kind,
            "windows": [
                {
                    "hours": 1,
                    "ladder": [{"level": "blue", "value": 10}, {"level": "red", "value": 20}],
                },
                {"hours": 3, "ladder": [{"level": "yellow", "value": 16}]},
            ],
            "deadband": 1,
        }
    )
    assert reference_rain_levels(rule, [(m * 60_000, v) for m, v in rows]) == expected


@pytest.mark.parametrize("name", SCENARIOS)
def test_values_sit_clearly_inside_their_bands(cfg: Config, name: str) -> None:
    """|value - rung| > deadband + 4 x noise for targets and baselines (with drift), rain window
    sums clear of the rungs that decide each level, and every phase holds the min_duration plus
    at least 3 samples of every sensor."""
    for block in load_scenario(name, cfg).sites:
        for sensor_id, spec in block.signals.items():
            sensor = cfg.sensor(block.site, sensor_id)
            for phase in block.phases:
                assert phase.duration_s >= 3 * sensor.period_s
            if sensor.rain is not None:
                _rain_sums_clear_of_rungs(
                    block, sensor_id, sensor.rain, sensor.period_s, spec.noise
                )
            for rule in sensor.thresholds:
                need = rule.deadband + 4 * spec.noise
                for phase in block.phases:
                    assert phase.duration_s >= rule.min_duration_s + 2 * sensor.period_s
                    target = phase.values.get(sensor_id)
                    drifted = [spec.baseline - spec.drift, spec.baseline + spec.drift]
                    for v in [target] if target is not None else drifted:
                        for step in rule.ladder:
                            assert abs(v - step.value) > need, (
                                f"{block.site}/{sensor_id} in {phase.name}: {v} "
                                f"is within {need} of the {step.level} rung {step.value}"
                            )


def _rain_sums_clear_of_rungs(
    block: ScenarioSite, sensor_id: str, rule: RainRule, period_s: float, noise: float
) -> None:
    """At every reading, each rung that decides the level (the one met, or one just missed above
    it) is further from the expected window sum than 4 x noise x sqrt(samples in the window) +
    one bucket. The expected rain of a sample is E[max(target + N(0, noise^2), 0)], so the drizzle
    that the clipped noise makes in dry phases is counted; sums rise and fall through rungs (a
    storm cannot skip them), so only the readings' own margins matter, not the phases'."""
    rain: list[float] = []
    for phase in block.phases:
        m = phase.values.get(sensor_id, block.signals[sensor_id].baseline)
        z = m / noise if noise else math.inf
        pdf = math.exp(-z * z / 2) / math.sqrt(2 * math.pi) if noise else 0.0
        expected = (
            m * 0.5 * (1 + math.erf(z / math.sqrt(2))) + noise * pdf if noise else max(m, 0.0)
        )
        rain += [expected] * round(phase.duration_s / period_s)
    level = 0
    for k in range(len(rain)):
        met: list[tuple[int, float, float, int]] = []  # (rank, margin, rung, hours), signed margin
        for window in rule.windows:
            n = round(window.hours * 3600 / period_s)
            total = sum(rain[max(0, k - n + 1) : k + 1])
            for step in window.ladder:
                rank = LEVELS.index(step.level)
                edge = step.value - (rule.deadband if level >= rank else 0.0)
                need = 4 * noise * math.sqrt(n) + BUCKET_MM
                met.append((rank, total - edge, need, window.hours))
        new = max((r for r, margin, _, _ in met if margin >= 0), default=0)
        for rank, margin, need, hours in met:
            deciding = (margin < 0 and rank > new) or (
                margin >= 0
                and rank == new
                and sum(1 for r, g, _, _ in met if r == rank and g >= 0) == 1
            )
            assert not deciding or abs(margin) > need, (
                f"{block.site}/{sensor_id} sample {k}: the {hours} h sum is {margin:+.2f} mm from "
                f"the {LEVELS[rank]} rung, within {need:.2f}"
            )
        level = new


# ------------------------------------------------------------------------------ real MQTT


def test_fast_run_delivers_every_planned_message_in_order(
    cfg: Config, broker_url: str, subscribe: Callable[[str], Any], wait_for: Callable[..., None]
) -> None:
    scenario = load_scenario("all", cfg)
    planned = plan(cfg, scenario, start_ms=START_MS, seed=1)
    rec = subscribe("hw/v1/#")
    seen: list[PlannedMessage] = []
    published = run(
        cfg, scenario, broker_url, seed=1, fast=True, start_ms=START_MS, on_publish=seen.append
    )
    assert published == sum(m.readings for m in planned) == 624  # 300 chemical + tailings, 324 rain
    assert seen == planned

    def data() -> list[tuple[str, bytes]]:
        return [
            (m.topic, m.payload) for m in rec.received(lambda m: not m.topic.endswith("/status"))
        ]

    wait_for(lambda: len(data()) >= len(planned), what="all planned messages")
    assert data() == [
        (m.topic, m.payload) for m in planned
    ]  # one broker, QoS 1, sequential: order kept
    statuses = rec.received(lambda m: m.topic.endswith("/status"))
    assert {(m.topic, m.payload) for m in statuses} == {
        (f"hw/v1/{b.site}/status", b"online") for b in scenario.sites
    }

    # After the clean end the retained status is still online (a will only fires on a crash).
    late = subscribe("hw/v1/+/status")
    wait_for(lambda: len(late.received()) == 3, what="retained statuses")
    assert {(m.topic, m.payload, m.retain) for m in late.received()} == {
        (f"hw/v1/{b.site}/status", b"online", True) for b in scenario.sites
    }


def test_last_will_reports_offline_when_the_simulator_is_killed(
    broker_url: str, subscribe: Callable[[str], Any], wait_for: Callable[..., None]
) -> None:
    rec = subscribe("hw/v1/CH-001/#")
    code = (
        "from config import load_config\n"
        "from sensors.scenario import load_scenario\n"
        "from sensors.simulator import run\n"
        "cfg = load_config('config/example')\n"
        f"run(cfg, load_scenario('chemical', cfg), {broker_url!r})\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )

    def live(suffix: str) -> list[Any]:  # delivered as sent, not replayed as retained
        return rec.received(lambda m: not m.retain and m.topic.endswith(suffix))

    try:
        wait_for(
            lambda: bool(live("/reading")) or proc.poll() is not None,
            timeout_s=20,
            what="a live reading from the simulator process",
        )
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert [m.payload for m in live("/status")] == [b"online"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: len(live("/status")) == 2, what="the last will")
        assert [m.payload for m in live("/status")] == [b"online", b"offline"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = subscribe("hw/v1/CH-001/status")
    wait_for(lambda: bool(after.received()), what="the retained status")
    assert [(m.payload, m.retain) for m in after.received()] == [(b"offline", True)]
