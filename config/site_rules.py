"""Site-level rules over the levels of other rules: k-of-n voting, the GB 39496-2020 aggregation
of points into an item, and composite all-of / any-of rules.

Attached to a site in ``sites.yaml`` (``site_rules:``), evaluated by ``rules/site.py`` after the
sensor rules, in the order listed; a site rule may use the rules of the site's sensors and the
site rules listed *before* it. A site rule's warnings have the subject ``SITE/RULE``. See
docs/CONFIGURATION.md.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from config.models_base import Id, WarningLevel

__all__ = [
    "AggregateRule", "CompositeRule", "Condition", "MaintenanceWindow", "Member", "SiteRule", "VoteRule",
    "member_list",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Member(_Model):
    """A rule whose level a site rule uses: ``rule`` of ``sensor``, or, with ``sensor`` omitted,
    that rule of whichever sensor of the site has it (the highest level among them), or a site
    rule listed earlier (its name as ``rule``)."""

    rule: Id
    sensor: Id | None = None

    @property
    def label(self) -> str:
        return f"{self.sensor}|{self.rule}" if self.sensor else self.rule


class Condition(Member):
    """A member at ``min_level`` or above."""

    min_level: WarningLevel = "yellow"


class _SiteRuleBase(_Model):
    rule: Id
    """The site rule's name; its warnings have the subject ``SITE/<rule>``."""
    name: str | None = None
    """What texts call it (zh-CN), e.g. ``储罐区可燃气体(2取3)``; the rule name when omitted."""
    name_en: str | None = None
    source: str | None = None


class VoteRule(_SiteRuleBase):
    """k-of-n voting across a sensor group: the level is the highest level at or above which at
    least ``k`` members stand (2-of-3 gas detectors in one area: one detector alone raises
    nothing at this rule)."""

    kind: Literal["vote"]
    members: Annotated[list[Member], Field(min_length=2, max_length=64)]
    k: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _k(self) -> VoteRule:
        if self.k > len(self.members):
            raise ValueError(f"k = {self.k} exceeds the {len(self.members)} members")
        return self


#: GB 39496-2020 §5.5.4 (STANDARDS.md): points at a level -> the item's level.
GB39496_STEPS: tuple[tuple[int, str, str], ...] = (
    (4, "blue", "yellow"),
    (3, "yellow", "orange"),
    (2, "orange", "red"),
)


class AggregateRule(_SiteRuleBase):
    """GB 39496-2020 aggregation of monitoring points into an item: the item's level is the
    highest of each point's own level and: 4 points at blue or above -> yellow; 3 at yellow or
    above -> orange; 2 at orange or above -> red. The same steps aggregate items into the dam
    (4 items at blue count as one item at yellow) when the members are items."""

    kind: Literal["aggregate"]
    method: Literal["gb39496"] = "gb39496"
    members: Annotated[list[Member], Field(min_length=1, max_length=256)]


class CompositeRule(_SiteRuleBase):
    """All-of or any-of over other rules' levels. While the conditions hold, the rule stands at
    ``level``, or -- with ``escalate`` -- one level (``by``) above the escalated rule's current
    level, capped at red, when that rule is raised at all. Otherwise it is normal.

    Example (tailings dam): rainfall at orange or above *and* a falling phreatic depth (a rate
    rule) escalate the phreatic item by one level."""

    kind: Literal["composite"]
    all_of: list[Condition] = []
    any_of: list[Condition] = []
    level: WarningLevel | None = None
    escalate: Member | None = None
    by: Annotated[int, Field(ge=1, le=3)] = 1

    @model_validator(mode="after")
    def _shape(self) -> CompositeRule:
        if not self.all_of and not self.any_of:
            raise ValueError("a composite rule needs all_of or any_of conditions")
        if (self.level is None) == (self.escalate is None):
            raise ValueError("a composite rule needs exactly one of level and escalate")
        return self

    def members(self) -> list[Member]:
        extra = [self.escalate] if self.escalate is not None else []
        return [*self.all_of, *self.any_of, *extra]


SiteRule = Annotated[VoteRule | AggregateRule | CompositeRule, Field(discriminator="kind")]


def member_list(rule: VoteRule | AggregateRule | CompositeRule) -> list[Member]:
    return rule.members() if isinstance(rule, CompositeRule) else list(rule.members)


class MaintenanceWindow(_Model):
    """A maintenance or calibration window of a whole site (``sensors`` empty) or of some of its
    sensors. Readings with a timestamp in ``[start, end)`` raise and clear nothing (they are not
    evaluated by any rule, data quality included), and the sensor is not reported offline while
    the window is open; the rule engine says so in a health event (``maintenance``) at the first
    such reading, with ``reason``."""

    kind: Literal["maintenance", "calibration"] = "maintenance"
    sensors: list[Id] = []
    start: AwareDatetime
    end: AwareDatetime
    reason: Annotated[str, Field(min_length=1, max_length=500)]

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if not self.start < self.end:
            raise ValueError(f"start {self.start.isoformat()} must be before end {self.end.isoformat()}")
        return self

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)
