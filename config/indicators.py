"""Settings of the regional plans' indicators (``indicators:`` in ``hazwatch.yaml``;
docs/INDICATORS.md): the public warning coverage target and the enterprise safety index's weights.

Every field has a default, so a configuration without the section gets the documented figures.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from config.models_base import WarningLevel, _Model

__all__ = ["CoverageSettings", "IndicatorSettings", "SafetyIndexSettings", "SafetyIndexWeights"]

Weight = Annotated[float, Field(ge=0, le=100)]


class CoverageSettings(_Model):
    """Public warning coverage (预警信息公众覆盖率) of red warnings."""

    target: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Share of a zone's subscribers whose red warning SMS must be delivered (docs/STANDARDS.md
    §5.7: the regional plan's ≥ 90 %)."""


class SafetyIndexWeights(_Model):
    """Relative weights of the safety index's components; they need not add up to 1 (the index
    divides by the sum of the weights of the components that apply on a day)."""

    warnings: Weight = 25
    acknowledge: Weight = 20
    disposal: Weight = 15
    online: Weight = 15
    false_alarms: Weight = 10
    overdue_repairs: Weight = 15

    @model_validator(mode="after")
    def _some_weight(self) -> SafetyIndexWeights:
        if not any(self.model_dump().values()):
            raise ValueError("at least one weight must be above 0")
        return self


class SafetyIndexSettings(_Model):
    """The enterprise dynamic safety index (危化企业安全管理动态指数), computed per enterprise and day."""

    weights: SafetyIndexWeights = SafetyIndexWeights()
    level_points: dict[WarningLevel, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"blue": 1, "yellow": 2, "orange": 4, "red": 8})
    """Points a warning episode costs by its peak level."""
    warning_points_zero: Annotated[float, Field(gt=0)] = 20
    """Points in one day at which the warnings component reaches 0."""
    ack_due_min: Annotated[float, Field(gt=0)] | None = None
    """Minutes within which a warning at the 叫应 level counts as answered in time; None (default):
    the first escalation step's ``after_min`` (answered before anyone was escalated to)."""
    repair_due_h: Annotated[float, Field(gt=0)] = 24
    """Hours after which a sensor fault still open counts as an overdue repair (a local choice)."""
    trend_days: Annotated[int, Field(ge=1, le=90)] = 7
    """Days of the ranking's trend (today included)."""


class IndicatorSettings(_Model):
    coverage: CoverageSettings = CoverageSettings()
    safety_index: SafetyIndexSettings = SafetyIndexSettings()
