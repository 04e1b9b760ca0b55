"""Rule kinds beyond the per-sensor threshold: rain accumulation windows, data quality, rate of
change and trend forecast.

Attached to a sensor in ``sites.yaml`` (``rain:``, ``quality:``, ``rate:`` and ``trend:``); see
docs/CONFIGURATION.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.models_base import Id, LadderStep, WarningLevel, level_rank

__all__ = ["QualitySpec", "RainRule", "RainWindow", "RateRule", "TrendRule"]

#: Sliding windows a rain rule may use, hours (STANDARDS: CMA signals 3/6/12 h, torrent tables 1/3/6/24 h).
RAIN_WINDOWS_H = (1, 3, 6, 12, 24)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RainWindow(_Model):
    hours: Literal[1, 3, 6, 12, 24]
    ladder: Annotated[list[LadderStep], Field(min_length=1, max_length=4)]
    """Rungs on the window's sum, mm; a rung is met at or above its value."""

    @model_validator(mode="after")
    def _ordered(self) -> RainWindow:
        ranks = [level_rank(s.level) for s in self.ladder]
        values = [s.value for s in self.ladder]
        if ranks != sorted(set(ranks)) or values != sorted(set(values)):
            raise ValueError(f"ladder must rise in level and value, got {[(s.level, s.value) for s in self.ladder]}")
        return self


class RainRule(_Model):
    """Sliding-window rainfall sums over a gauge's reports, any-window-met semantics.

    The gauge reports either an ``increment`` (mm since its last report, a tipping bucket) or a
    ``counter`` (cumulative mm that resets: a drop is a reset, the new value the rain since it).
    The rule's level is the highest level any window meets (STANDARDS: mountain-torrent tables).
    """

    rule: Id = "rainfall"
    input: Literal["increment", "counter"] = "increment"
    windows: Annotated[list[RainWindow], Field(min_length=1)]
    deadband: Annotated[float, Field(ge=0)] = 0.0
    """mm below a rung before the level steps down."""
    source: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> RainRule:
        hours = [w.hours for w in self.windows]
        if len(set(hours)) != len(hours):
            raise ValueError(f"each window may appear once, got {hours}")
        return self


class QualitySpec(_Model):
    """Data-quality checks of one sensor. A sensor in fault is quarantined: its readings neither
    raise nor clear threshold warnings until it is healthy again."""

    offline_after_periods: Annotated[float, Field(gt=1)] = 3.0
    """Offline when no reading came for this many expected periods (by the wall clock)."""
    stuck_samples: Annotated[int, Field(ge=3)] | None = None
    """Stuck when this many consecutive readings carry the same value (off when unset)."""
    spike_mad: Annotated[float, Field(gt=0)] | None = None
    """Spike when |v - median| > spike_mad x MAD over the last readings (off when unset)."""
    spike_window: Annotated[int, Field(ge=5, le=32)] = 9


#: Unit suffixes of the usual rate bases, seconds -> label (``mm/d``, ``m/h``).
PER_UNITS: dict[float, str] = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "d"}


def _ladder_check(ladder: list[LadderStep], direction: str, deadband: float) -> None:
    """The ThresholdRule ladder checks: distinct rising levels, values strictly monotone in the
    rule's direction, deadband smaller than the smallest gap between rungs."""
    ranks = [level_rank(s.level) for s in ladder]
    if ranks != sorted(ranks) or len(set(ranks)) != len(ranks):
        raise ValueError("ladder levels must be distinct and listed from least to most severe")
    values = [s.value for s in ladder]
    for a, b in zip(values, values[1:]):
        if (direction == "high" and not b > a) or (direction == "low" and not b < a):
            raise ValueError(
                f"ladder values must be strictly {'increasing' if direction == 'high' else 'decreasing'}"
                f" for a {direction} rule, got {values}"
            )
    gaps = [abs(b - a) for a, b in zip(values, values[1:])]
    if gaps and deadband >= min(gaps):
        raise ValueError(f"deadband {deadband:g} must be smaller than the smallest gap between rungs ({min(gaps):g})")


class RateRule(_Model):
    """Rate of change over a sliding window of event time (STANDARDS tailings: "displacement uses
    accumulated value and rate"; tank and pond level rise per hour).

    At a reading ``(ts, v)`` the rate is ``(v - v_o) / (ts - ts_o) * per_s`` where ``(ts_o, v_o)`` is
    the oldest kept reading with ``ts_o >= ts - window_s`` (a reading exactly ``window_s`` old is
    inside): the change over the window, linear in time, per ``per_s`` seconds. No rate, and so no
    level change, while the kept readings span less than ``min_span_s`` (or nothing is in the window).

    The ladder is on the *signed* rate, in ``sensor unit / per_s``, with ThresholdRule semantics:
    ``high`` (rising is worse) raises at or above a rung; ``low`` (falling is worse) at or below it,
    so its rungs are negative and decreasing (e.g. -0.2, -0.5 m/h).
    """

    rule: Id
    window_s: Annotated[float, Field(gt=0)]
    """Window of event time the change is taken over, seconds."""
    per_s: Annotated[float, Field(gt=0)] = 86400.0
    """The rate is expressed per this many seconds (86400: per day, 3600: per hour)."""
    direction: Literal["high", "low"] = "high"
    ladder: Annotated[list[LadderStep], Field(min_length=1, max_length=4)]
    deadband: Annotated[float, Field(ge=0)] = 0.0
    """Rate units beyond a rung before the level steps down."""
    min_duration_s: Annotated[float, Field(ge=0)] = 0.0
    """A rung must hold this long (event time) before its level is entered."""
    min_span_s: Annotated[float, Field(ge=0)] = 0.0
    """The rate is evaluated only when the readings it is taken from lie at least this far apart
    (a rate from minutes of a noisy GNSS series is noise); at most ``window_s``."""
    source: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> RateRule:
        _ladder_check(self.ladder, self.direction, self.deadband)
        if self.min_span_s > self.window_s:
            raise ValueError(f"min_span_s {self.min_span_s:g} must not exceed window_s {self.window_s:g}")
        return self

    @property
    def per_unit(self) -> str:
        """``d``, ``h``, ``min``, ``s``, or ``<n>s`` for another base."""
        return PER_UNITS.get(float(self.per_s), f"{self.per_s:g}s")


class TrendRule(_Model):
    """Trend forecast: a least-squares line over the last ``window_s`` of readings gives the time
    left (ETA) before the value reaches the next rung of the sensor's *first* threshold rule, in
    that rule's direction, from the current value. A ``forecast`` warning at ``level`` is raised when
    the ETA is shorter than ``horizon_s`` and cleared when it is at least ``clear_factor x
    horizon_s`` (hysteresis), when the line no longer moves toward a rung, or when no rung is left.

    ``level`` is fixed (default yellow) rather than "one below the forecast rung": a forecast is
    advice to prepare, one episode per approach; the rung it forecasts is in ``detail``.
    """

    rule: Id = "forecast"
    window_s: Annotated[float, Field(gt=0)] = 21600.0
    """Least-squares fit window, seconds of event time."""
    horizon_s: Annotated[float, Field(gt=0)] = 21600.0
    """Warn when the ETA to the next rung is shorter than this, seconds."""
    clear_factor: Annotated[float, Field(ge=1)] = 1.2
    """Clear when the ETA is at least ``clear_factor x horizon_s``."""
    min_points: Annotated[int, Field(ge=3, le=64)] = 6
    """Readings in the window needed for a fit (at most the ring's 64); fewer: not evaluated."""
    level: WarningLevel = "yellow"
    source: str | None = None
