"""The building blocks every configuration model uses: ids, levels and ladder rungs."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator

__all__ = ["ID_PATTERN", "LEVELS", "RESERVED_SITE_IDS", "Id", "SiteId", "LadderStep", "Level", "WarningLevel", "level_rank"]

#: Ids of sites, sensors and zones; the same pattern the MQTT contract uses (docs/ARCHITECTURE.md §14.2).
ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
#: Names a site may not have: the broadcast topics' level (hw/v1/broadcast/...) and the MQTT
#: accounts of hazwatch's own services, since a device logs in with its site id.
RESERVED_SITE_IDS = frozenset({"broadcast", "hazwatch-ingest", "hazwatch-alerts", "hazwatch-probe",
                               "loudspeaker"})


def _site_id(value: str) -> str:
    if value in RESERVED_SITE_IDS:
        raise ValueError(f"site id {value!r} is reserved for hazwatch's own MQTT topics and accounts")
    return value


SiteId = Annotated[str, StringConstraints(pattern=ID_PATTERN), AfterValidator(_site_id)]

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
