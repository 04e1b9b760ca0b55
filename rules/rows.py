"""What every rule stage shares: row names and the split of a micro-batch into rounds.

A stage compiles its rules into *rows* (one per sensor and rule). A micro-batch may hold several
readings of one row; ordered by (row, ts), the k-th reading of every row forms round k, so each
round touches every row at most once and is evaluated with vectorised masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from config.models import LEVELS
from rules.events import WarningEvent, episode_id, event_kind

__all__ = ["RowNames", "rounds"]


def rounds(rows: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order readings by (row, ts); return the order and each ordered reading's round number."""
    order = np.lexsort((ts, rows))
    r = rows[order]
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    occ = np.arange(len(r)) - np.repeat(starts, np.diff(np.r_[starts, len(r)]))
    return order, occ


class RowNames:
    """For compiled tables with ``site``, ``sensor`` and ``rule`` lists indexed by row."""

    site: list[str]
    sensor: list[str]
    rule: list[str]
    unit: list[str]

    def subject(self, row: int) -> str:
        return f"{self.site[row]}/{self.sensor[row]}"

    def key(self, row: int) -> str:
        """The row's name in persisted state: ``sensor|rule`` (the site is the table key)."""
        return f"{self.sensor[row]}|{self.rule[row]}"

    def event(self, row: int, *, previous: int, level: int, ts: int, episode_ts: int, emitted_at: int,
              value: float, threshold: float | None, detail: dict[str, Any]) -> WarningEvent:
        """The warning event of one level change of ``row`` (levels as ranks 0..4)."""
        subject = self.subject(row)
        return WarningEvent(
            episode=episode_id(subject, self.rule[row], episode_ts), site=self.site[row], subject=subject,
            rule=self.rule[row], kind=event_kind(previous, level), level=LEVELS[level],
            previous=LEVELS[previous], ts=ts, emitted_at=emitted_at, value=value, threshold=threshold,
            unit=self.unit[row], detail=detail,
        )
