"""Rule kinds beyond the per-sensor threshold: rain accumulation windows and data quality.

Attached to a sensor in ``sites.yaml`` (``rain:`` and ``quality:``); see docs/CONFIGURATION.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.models_base import Id, LadderStep, level_rank

__all__ = ["QualitySpec", "RainRule", "RainWindow"]

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
