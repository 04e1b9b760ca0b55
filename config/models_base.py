"""The building blocks every configuration model uses: ids, levels and ladder rungs."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

__all__ = ["ID_PATTERN", "LEVELS", "Id", "LadderStep", "Level", "WarningLevel", "level_rank"]

#: Ids of sites, sensors and zones; the same pattern the MQTT contract uses (docs/ARCHITECTURE.md §14.2).
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

#: Levels in order of severity (docs/ARCHITECTURE.md §14.4: normal < blue < yellow < orange < red).
LEVELS: tuple[str, ...] = ("normal", "blue", "yellow", "orange", "red")
Level = Literal["normal", "blue", "yellow", "orange", "red"]
WarningLevel = Literal["blue", "yellow", "orange", "red"]


def level_rank(level: str) -> int:
    """0 for normal up to 4 for red."""
    return LEVELS.index(level)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LadderStep(_Model):
    """One rung of a threshold ladder: at or beyond ``value`` the level is at least ``level``."""

    level: WarningLevel
    value: float
    tag: Literal["L", "LL", "H", "HH"] | None = None
    """The DCS/SCADA tag limit this rung stands for, when it comes from one."""

    @model_validator(mode="after")
    def _finite(self) -> LadderStep:
        if not math.isfinite(self.value):
            raise ValueError("threshold value must be a finite number")
        return self
