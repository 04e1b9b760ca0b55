"""The sensor fleet simulator: a pure planner and a thin MQTT publisher around it.

:func:`plan` turns a configuration and a :class:`~sensors.scenario.Scenario` into the exact list of
MQTT messages a fleet would send, each with the wall-clock offset at which to send it. It reads no
clock unless ``start_ms`` is left out, and draws noise from generators seeded by (seed, site,
sensor), so a plan is reproducible and one sensor's noise does not change when another is added.

Event time: each site's readings start at ``start_ms``; by default that is now minus the site's
scenario duration (aligned down to its longest sampling period), so the last reading is about now
and every reading lies in the past. The demo replays the scenario accelerated by the site's
``speed``: ``wall_s = (ts - site_start) / speed / 1000``. Ingest rejects readings more than 5 min in
the future, which is why the plan never starts at now.

:func:`run` publishes a plan over MQTT (paho-mqtt 2.x, QoS 1) with one
:class:`~sensors.device.Device` per site, as a device or gateway would: it keeps every reading
until the broker acknowledges it and sends it again after a lost link or a broker restart, its
last will sets ``hw/v1/{site}/status`` to ``offline`` (retained), and it publishes ``online``
(retained) on every (re)connect. At a clean end the devices disconnect without touching the
status, which stays ``online``: a device that has finished its script is still a device in the
field, and the health monitor notices the silence by itself; the will covers crashes and lost
links.

Errors::

    SensorsError                 (sensors.scenario)
     +-- ScenarioError           the scenario does not fit the configuration
     +-- PublishError            the broker refused or dropped the simulator (sensors.device)
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import orjson

from config import Config
from config.models import Sensor
from config.mqtt import MqttSettings
from sensors.device import CONNECT_TIMEOUT_S, Device, PublishError, status_topic
from sensors.scenario import (
    DERIVED_QUANTITIES,
    Scenario,
    ScenarioError,
    ScenarioSite,
    check_scenario,
)
from sensors.signals import HOUR_MS, analog, daily_drift, rain_gauge

__all__ = [
    "DECIMALS",
    "PlannedMessage",
    "PublishError",
    "batch_topic",
    "plan",
    "reading_topic",
    "run",
    "status_topic",
]

#: Decimals on the wire per quantity: the resolution of a typical instrument of that kind.
DECIMALS: dict[str, int] = {
    "combustible_gas": 1,  # %LEL
    "toxic_gas": 1,  # %OEL
    "oxygen": 2,  # %VOL
    "tank_level": 3,  # m (radar gauges resolve mm)
    "temperature": 1,  # °C
    "pressure": 3,  # MPa
    "phreatic_depth": 3,  # m
    "freeboard": 3,  # m
    "dry_beach_length": 2,  # m
    "pond_level": 3,  # m
    "surface_displacement": 1,  # mm
    "rain_increment": 1,  # mm, multiples of the 0.2 mm bucket
    "rain_1h": 1,  # mm
}

DRAIN_TIMEOUT_S = 10.0
"""How long a timed run waits at its end for outstanding PUBACKs, seconds (a fast run waits
``CONNECT_TIMEOUT_S`` for each PUBACK)."""


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One MQTT message of a plan, sent ``wall_s`` seconds after the run starts."""

    wall_s: float
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    readings: int = 1
    """Readings carried: 1 for a single reading, the batch length for a batch."""


def reading_topic(site: str, sensor: str) -> str:
    return f"hw/v1/{site}/{sensor}/reading"


def batch_topic(site: str) -> str:
    return f"hw/v1/{site}/batch"


# ------------------------------------------------------------------------------ the pure planner


def _rng(seed: int, site: str, sensor: str) -> np.random.Generator:
    # crc32, not hash(): stable across processes (PYTHONHASHSEED) and Python versions.
    return np.random.default_rng([seed, zlib.crc32(site.encode()), zlib.crc32(sensor.encode())])


def _period_ms(sensor: Sensor) -> int:
    return max(1, round(sensor.period_s * 1000))


def _simulated(config: Config, block: ScenarioSite) -> list[Sensor]:
    """Sensors of the site that the block drives, in configuration order."""
    return [s for s in config.site(block.site).sensors if s.id in block.signals]


def _default_start(config: Config, block: ScenarioSite, now_ms: int) -> int:
    """now - duration, aligned down to the longest period: loggers report on the 5/10-min mark."""
    align = max(_period_ms(s) for s in _simulated(config, block))
    return (now_ms - round(block.duration_s * 1000)) // align * align


def _site_series(
    config: Config, block: ScenarioSite, start_ms: int, seed: int
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(sensor id, ts epoch ms, value) per published sensor of one site, in configuration order."""
    site = config.site(block.site)
    bounds = np.cumsum([0] + [round(p.duration_s * 1000) for p in block.phases]).astype(np.int64)
    series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rain_source_done = False
    for sensor in _simulated(config, block):
        spec = block.signals[sensor.id]
        offsets = np.arange(0, int(bounds[-1]), _period_ms(sensor), dtype=np.int64)
        ts = start_ms + offsets
        phase = np.searchsorted(bounds[1:], offsets, side="right")
        targets = np.array([p.values.get(sensor.id, math.nan) for p in block.phases])[phase]
        mean = np.where(np.isnan(targets), spec.baseline + daily_drift(ts, spec.drift), targets)
        decimals = spec.decimals if spec.decimals is not None else DECIMALS[sensor.quantity]
        rng = _rng(seed, site.id, sensor.id)
        if sensor.quantity == "rain_increment":
            increments, hour = rain_gauge(ts, mean, spec.noise, rng, window_ms=HOUR_MS)
            series[sensor.id] = (ts, np.round(increments, decimals))
            if not rain_source_done:  # the logger derives its sums from the first gauge
                rain_source_done = True
                for derived in site.sensors:
                    if DERIVED_QUANTITIES.get(derived.quantity) == sensor.quantity:
                        d = DECIMALS[derived.quantity]
                        series[derived.id] = (ts, np.round(hour, d))
        else:
            lo, hi = sensor.range if sensor.range is not None else (None, None)
            series[sensor.id] = (
                ts,
                np.round(analog(mean, spec.noise, rng, lo=lo, hi=hi), decimals),
            )
    return [(s.id, *series[s.id]) for s in site.sensors if s.id in series]


def _value(v: float) -> float:
    return float(v) + 0.0  # +0.0 turns -0.0 into 0.0 on the wire


def _site_messages(
    block: ScenarioSite, start_ms: int, series: list[tuple[str, np.ndarray, np.ndarray]]
) -> list[PlannedMessage]:
    # Readings ordered by (ts, sensor order): the order a device samples and a logger reports.
    readings = sorted(
        (
            (int(t), order, sensor, _value(v))
            for order, (sensor, ts, vals) in enumerate(series)
            for t, v in zip(ts.tolist(), vals.tolist(), strict=True)
        ),
        key=lambda r: (r[0], r[1]),
    )
    scale = 1.0 / (block.speed * 1000.0)
    out: list[PlannedMessage] = []
    if block.mode == "single":
        for t, _, sensor, v in readings:
            payload = orjson.dumps({"ts": t, "v": v})
            out.append(
                PlannedMessage((t - start_ms) * scale, reading_topic(block.site, sensor), payload)
            )
        return out
    i = 0
    while i < len(readings):
        t = readings[i][0]
        j = i
        while j < len(readings) and readings[j][0] == t:
            j += 1
        items = [{"sensor": sensor, "ts": t, "v": v} for t, _, sensor, v in readings[i:j]]
        out.append(
            PlannedMessage(
                (t - start_ms) * scale,
                batch_topic(block.site),
                orjson.dumps({"readings": items}),
                readings=j - i,
            )
        )
        i = j
    return out


def plan(
    config: Config, scenario: Scenario, *, start_ms: int | None = None, seed: int = 0
) -> list[PlannedMessage]:
    """Every message the scenario publishes, sorted by ``wall_s`` (ties: scenario site order).

    ``start_ms`` (epoch ms) is where every site's event time starts; by default each site starts
    at now minus its duration, so all readings lie in the past. ``seed`` (>= 0) selects the noise.
    Raise :class:`ScenarioError` when the scenario does not fit ``config``.
    """
    issues = check_scenario(scenario, config)
    if issues:
        raise ScenarioError(scenario.source, issues)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    now_ms = time.time_ns() // 1_000_000
    out: list[PlannedMessage] = []
    for block in scenario.sites:
        start = start_ms if start_ms is not None else _default_start(config, block, now_ms)
        out.extend(_site_messages(block, start, _site_series(config, block, start, seed)))
    out.sort(key=lambda m: m.wall_s)  # stable: equal wall times keep site, then sensor order
    return out


# ------------------------------------------------------------------------------ the MQTT shell


def _site_of(topic: str) -> str:
    return topic.split("/")[2]  # hw/v1/{site}/...


def run(
    config: Config,
    scenario: Scenario,
    mqtt_url: str | MqttSettings,
    *,
    seed: int = 0,
    fast: bool = False,
    start_ms: int | None = None,
    stop: threading.Event | None = None,
    on_publish: Callable[[PlannedMessage], None] | None = None,
    passwords: Mapping[str, str] | None = None,
) -> int:
    """Publish the scenario's plan to ``mqtt_url`` (``mqtt://host:port``, ``mqtts://...``, or the
    ``mqtt`` settings with their TLS files and account); return the readings the broker acknowledged.

    ``fast``: publish in plan order as fast as the broker acknowledges, one message at a time
    (order and delivery guaranteed; for tests). Otherwise each message goes out at its ``wall_s``
    after the start; setting ``stop`` ends the run early. ``on_publish`` is called from this
    thread with each message after it was handed to (fast: acknowledged by) the broker.
    Raise :class:`PublishError` when the broker cannot be reached or stops acknowledging.
    ``passwords``: each site's device account (the site id is its user name), as the embedded
    stack creates them; without it the devices log in as ``mqtt_url`` says.
    """
    messages = plan(config, scenario, start_ms=start_ms, seed=seed)
    stop = stop if stop is not None else threading.Event()
    devices: dict[str, Device] = {}
    try:
        for block in scenario.sites:
            password = passwords.get(block.site) if passwords is not None else None
            devices[block.site] = Device(block.site, mqtt_url, password=password).connect()
        if fast:
            for msg in messages:
                if stop.is_set():
                    break
                device = devices[_site_of(msg.topic)]
                device.publish(msg)
                if not device.wait_acknowledged(CONNECT_TIMEOUT_S):
                    raise PublishError(f"no PUBACK for {msg.topic} within {CONNECT_TIMEOUT_S} s")
                if on_publish is not None:
                    on_publish(msg)
        else:
            t0 = time.monotonic()
            for msg in messages:
                delay = t0 + msg.wall_s - time.monotonic()
                if (delay > 0 and stop.wait(delay)) or stop.is_set():
                    break
                devices[_site_of(msg.topic)].publish(msg)
                if on_publish is not None:
                    on_publish(msg)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            for device in devices.values():  # what is still unacknowledged then is not counted
                device.wait_acknowledged(max(0.0, deadline - time.monotonic()))
        return sum(d.acknowledged for d in devices.values())
    finally:
        for device in devices.values():
            device.close()
