"""Inhibition rules (``notify.inhibit`` in hazwatch.yaml): while a source condition holds, matching
messages are recorded as suppressed instead of sent. Prometheus Alertmanager's ``inhibit_rules``,
for the two sources a warning has here:

- ``fault: true``: the message's own sensor is in fault (a data-quality warning of the same
  subject is active): its readings are not to be trusted, and neither are its threshold warnings;
- ``site_level: <level>``: another active episode of the same site is at that level or above: the
  site's people are already acting on the worse warning.

A message matches a rule when its kind is in ``kinds`` and its level in ``levels`` (an all-clear has
the level ``normal``). The first matching rule names the reason. Red is never inhibited: a rule
that lists it is refused. The defaults are the rules hazwatch always had
(:data:`DEFAULT_INHIBIT_RULES`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from config.models_base import _Model, level_rank

__all__ = ["DEFAULT_INHIBIT_RULES", "InhibitRule", "InhibitSource", "MessageKind"]

MessageKind = Literal["raised", "escalated", "deescalated", "cleared"]
_TARGET_LEVELS = Literal["normal", "blue", "yellow", "orange", "red"]


class InhibitSource(_Model):
    fault: bool = False
    """The message's own sensor is in fault."""
    site_level: Literal["blue", "yellow", "orange", "red"] | None = None
    """Another active episode of the same site is at this level or above."""

    @model_validator(mode="after")
    def _one(self) -> InhibitSource:
        if self.fault == (self.site_level is not None):
            raise ValueError("give exactly one source: `fault: true` or `site_level: <level>`")
        return self

    def holds(self, *, subject_in_fault: bool, site_level: str) -> bool:
        if self.fault:
            return subject_in_fault
        assert self.site_level is not None
        return level_rank(site_level) >= level_rank(self.site_level)


class InhibitRule(_Model):
    name: Annotated[str, Field(min_length=1)]
    """Recorded as the reason of each message it suppresses ("inhibited: <name>")."""
    source: InhibitSource
    levels: Annotated[list[_TARGET_LEVELS], Field(min_length=1)]
    kinds: Annotated[list[MessageKind], Field(min_length=1)]

    @model_validator(mode="after")
    def _never_red(self) -> InhibitRule:
        if "red" in self.levels:
            raise ValueError("red is never inhibited: remove `red` from levels")
        if ("cleared" in self.kinds) != ("normal" in self.levels):
            raise ValueError("an all-clear has the level `normal`: list both `cleared` (kinds) and `normal` "
                             "(levels), or neither")
        return self

    def matches(self, *, level: str, kind: str, subject_in_fault: bool, site_level: str) -> bool:
        return (kind in self.kinds and level in self.levels
                and self.source.holds(subject_in_fault=subject_in_fault, site_level=site_level))


_WARNINGS: list[_TARGET_LEVELS] = ["blue", "yellow", "orange"]
_CHANGES: list[MessageKind] = ["raised", "escalated", "deescalated"]

DEFAULT_INHIBIT_RULES: tuple[InhibitRule, ...] = (
    InhibitRule(name="subject in fault", source=InhibitSource(fault=True), levels=_WARNINGS, kinds=_CHANGES),
    InhibitRule(name="subject in fault: all-clear held", source=InhibitSource(fault=True),
                levels=["normal"], kinds=["cleared"]),
    InhibitRule(name="site at red", source=InhibitSource(site_level="red"), levels=_WARNINGS, kinds=_CHANGES),
)
"""A fault inhibits the subject's other warnings and holds their all-clear (it goes out once the
sensor is trusted again); a site at red inhibits its blue, yellow and orange changes, never an
all-clear. The fault comes first: it is the more specific cause."""
