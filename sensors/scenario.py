"""Simulation scenarios: typed, frozen, loaded from YAML and checked against the configuration.

A scenario drives one or more sites at the same time, each through a list of phases::

    name: chemical
    description: a gas leak grows and is stopped
    sites:
      - site: CH-001            # a site of sites.yaml
        speed: 5                # event seconds per wall second
        mode: single            # single: hw/v1/{site}/{sensor}/reading; batch: hw/v1/{site}/batch
        signals:                # the sensors simulated, in the sensor's unit
          GT-101: {baseline: 1.0, noise: 0.3, drift: 0.5}
        phases:
          - {name: normal, duration_s: 60}
          - {name: yellow, duration_s: 60, values: {GT-101: 17}}

Within a phase a sensor listed under ``values`` is held at that target plus its noise; the others
follow baseline + daily drift + noise (:mod:`sensors.signals`). Only the sensors under ``signals``
publish, so a scenario can leave a sensor silent on purpose. A ``rain_1h`` sensor is not simulated
on its own: the data logger derives it from the site's ``rain_increment`` sensor (the first one
under ``signals``), whose targets are mm of rain per reporting interval.

Packaged scenarios live in ``sensors/scenarios/*.yaml``; :func:`load_scenario` finds them by name.

Errors::

    SensorsError                 base of the sensors package
     +-- ScenarioError           a scenario file is unreadable or invalid; lists every issue
                                 (file, path, reason), never only the first
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError

from config import Config, ConfigIssue
from config.models import ID_PATTERN

__all__ = [
    "DERIVED_QUANTITIES",
    "Phase",
    "Scenario",
    "ScenarioError",
    "ScenarioSite",
    "SensorsError",
    "SignalSpec",
    "check_scenario",
    "load_scenario",
    "scenario_names",
]

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

#: Quantities a data logger derives from another sensor instead of measuring them.
DERIVED_QUANTITIES: dict[str, str] = {"rain_1h": "rain_increment"}


class SensorsError(Exception):
    """Base of every error raised by the sensors package."""


class ScenarioError(SensorsError):
    """A scenario is unreadable or invalid; ``issues`` lists every problem found."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        self.source = source
        self.issues = issues
        lines = "\n".join(f"  {i}" for i in issues)
        super().__init__(f"invalid scenario {source} ({len(issues)} error(s)):\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SignalSpec(_Model):
    """How one sensor behaves outside the phases that pin it; all values in the sensor's unit."""

    baseline: float
    noise: Annotated[float, Field(ge=0)] = 0.0
    """Standard deviation of the Gaussian measurement noise (also applied to phase targets)."""
    drift: Annotated[float, Field(ge=0)] = 0.0
    """Amplitude of the daily (24 h, event time) sinusoidal drift around the baseline."""
    decimals: Annotated[int, Field(ge=0, le=6)] | None = None
    """Decimals on the wire; default per quantity (``sensors.simulator.DECIMALS``)."""


class Phase(_Model):
    name: Annotated[str, Field(min_length=1)]
    duration_s: Annotated[float, Field(gt=0)]
    """Length of the phase in event time, seconds."""
    values: dict[Id, float] = {}
    """Sensors held at a target value (sensor unit) during the phase."""


class ScenarioSite(_Model):
    """One site driven by a scenario: one simulated device or gateway, one MQTT client."""

    site: Id
    speed: Annotated[float, Field(gt=0)]
    """Event seconds per wall second (300: ten minutes of dam data every two seconds)."""
    mode: Literal["single", "batch"] = "single"
    signals: Annotated[dict[Id, SignalSpec], Field(min_length=1)]
    phases: Annotated[list[Phase], Field(min_length=1)]

    @property
    def duration_s(self) -> float:
        """Total event time of the phases, seconds."""
        return sum(p.duration_s for p in self.phases)

    @property
    def wall_s(self) -> float:
        """Wall-clock time the site takes when replayed at ``speed``, seconds."""
        return self.duration_s / self.speed


class Scenario(_Model):
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    sites: Annotated[list[ScenarioSite], Field(min_length=1)]

    _source: str = PrivateAttr(default="<scenario>")

    @property
    def source(self) -> str:
        """Where the scenario was loaded from (a file path), for error messages."""
        return self._source


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def check_scenario(scenario: Scenario, config: Config) -> list[ConfigIssue]:
    """Every problem between ``scenario`` and ``config``: unknown sites and sensors, derived
    sensors given signals, phase targets without signals, values outside a sensor's range."""
    issues: list[ConfigIssue] = []

    def add(path: str, reason: str) -> None:
        issues.append(ConfigIssue(scenario.source, path, reason))

    site_ids = [s.id for s in config.sites]
    seen: dict[str, int] = {}
    for i, block in enumerate(scenario.sites):
        here = f"sites[{i}]"
        if block.site in seen:
            add(
                f"{here}.site",
                f"site {block.site!r} is driven twice (also sites[{seen[block.site]}])",
            )
            continue
        seen[block.site] = i
        if block.site not in site_ids:
            add(f"{here}.site", f"unknown site {block.site!r} (sites.yaml defines {site_ids})")
            continue
        sensor_ids = [x.id for x in config.site(block.site).sensors]
        unknown = f"at site {block.site} (sites.yaml defines {sensor_ids})"
        for sensor_id, spec in block.signals.items():
            where = f"{here}.signals.{sensor_id}"
            sensor = config.sensor(block.site, sensor_id)
            if sensor is None:
                add(where, f"unknown sensor {sensor_id!r} {unknown}")
            elif sensor.quantity in DERIVED_QUANTITIES:
                add(
                    where,
                    f"{sensor_id} ({sensor.quantity}) is derived by the data logger from the "
                    f"{DERIVED_QUANTITIES[sensor.quantity]} sensor; "
                    "give signals for that sensor instead",
                )
            elif sensor.range is not None and not (
                sensor.range[0] <= spec.baseline - spec.drift
                and spec.baseline + spec.drift <= sensor.range[1]
            ):
                add(
                    where,
                    f"baseline {spec.baseline} +/- drift {spec.drift} leaves the measuring range "
                    f"{list(sensor.range)} of {block.site}/{sensor_id}",
                )
        for j, phase in enumerate(block.phases):
            for sensor_id, target in phase.values.items():
                where = f"{here}.phases[{j}].values.{sensor_id}"
                sensor = config.sensor(block.site, sensor_id)
                if sensor is None:
                    add(where, f"unknown sensor {sensor_id!r} {unknown}")
                elif sensor_id not in block.signals:
                    add(
                        where,
                        f"{sensor_id} has a target but no entry under {here}.signals, "
                        "so it is not simulated",
                    )
                elif sensor.range is not None and not sensor.range[0] <= target <= sensor.range[1]:
                    add(
                        where,
                        f"target {target} is outside the measuring range {list(sensor.range)} "
                        f"of {block.site}/{sensor_id}",
                    )
    return issues


def scenario_names() -> list[str]:
    """Names of the scenarios packaged in ``sensors/scenarios``."""
    folder = resources.files("sensors").joinpath("scenarios")
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _locate(name_or_path: str | Path) -> tuple[str, str]:
    """(source for messages, YAML text) of a packaged scenario name or a file path."""
    text = str(name_or_path)
    if (
        isinstance(name_or_path, Path)
        or text.endswith((".yaml", ".yml"))
        or "/" in text
        or "\\" in text
    ):
        path = Path(text)
        try:
            return str(path), path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = f"cannot read the file: {exc.strerror or exc}"
            raise ScenarioError(str(path), [ConfigIssue(str(path), "", reason)]) from exc
    packaged = resources.files("sensors").joinpath("scenarios", f"{text}.yaml")
    if not packaged.is_file():
        reason = (
            f"no packaged scenario {text!r} (available: {scenario_names()}); "
            "give a name or a path to a .yaml file"
        )
        raise ScenarioError(text, [ConfigIssue(text, "", reason)])
    return f"sensors/scenarios/{text}.yaml", packaged.read_text(encoding="utf-8")


def load_scenario(name_or_path: str | Path, config: Config | None = None) -> Scenario:
    """Load a packaged scenario by name (``"tailings"``) or a YAML file by path.

    With ``config``, also check the scenario against it (:func:`check_scenario`).
    Raise :class:`ScenarioError` listing every issue with file, path and reason.
    """
    source, text = _locate(name_or_path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = f"not valid YAML: {getattr(exc, 'problem', exc)}"
        raise ScenarioError(source, [ConfigIssue(source, where, reason)]) from exc
    if not isinstance(data, dict):
        reason = f"must be a mapping, got {type(data).__name__}"
        raise ScenarioError(source, [ConfigIssue(source, "", reason)])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        issues = [ConfigIssue(source, _path(e["loc"]), e["msg"]) for e in exc.errors()]
        raise ScenarioError(source, issues) from exc
    scenario._source = source
    if config is not None:
        issues = check_scenario(scenario, config)
        if issues:
            raise ScenarioError(source, issues)
    return scenario
