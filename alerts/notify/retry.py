"""Retry: the one place that decides whether and when a message is tried again.

Pure (``now`` and the random source passed in), table-tested in ``tests/alerts/test_retry.py``:

| outcome   | rows become | looked at again                                              |
|-----------|-------------|--------------------------------------------------------------|
| sent      | sent        | never                                                        |
| failed    | failed      | never (a refusal of this message: invalid number, template)  |
| retry     | pending     | after the backoff, and never before the provider's retry-after |
| unknown   | unknown     | after :data:`RECONCILE_AFTER_S`, when the provider is asked  |
| (a crash) | unknown / pending | after the backoff (:func:`after_error`)                |
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from alerts.channels.base import Outcome
from alerts.notify.stage import Ctx, Next
from alerts.store import Notification

__all__ = ["RECONCILE_AFTER_S", "Retry", "after_error", "backoff_s", "next_try"]

log = logging.getLogger("hazwatch.alerts")
RECONCILE_AFTER_S = 5.0


def backoff_s(attempts: int, rng: random.Random, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Exponential backoff with jitter: half fixed, half random, capped."""
    step = min(cap_s, base_s * 2 ** max(attempts - 1, 0))
    return step / 2 + rng.uniform(0, step / 2)


def next_try(outcome: Outcome, attempts: int, now: dt.datetime, rng: random.Random) -> Next:
    """What becomes of a message whose ``attempts``-th send (1 for the first) answered ``outcome``."""
    if outcome.status in ("sent", "failed"):
        return Next(outcome.status)
    if outcome.status == "retry":
        delay = max(backoff_s(attempts, rng), outcome.retry_after_s or 0.0)
        return Next("pending", now + dt.timedelta(seconds=delay))
    return Next("unknown", now + dt.timedelta(seconds=RECONCILE_AFTER_S))


def after_error(attempts: int, now: dt.datetime, rng: random.Random) -> dt.datetime:
    """When to look again at rows whose dispatch raised (a store or template hiccup): what may
    have gone out is reconciled before it is sent again, never resent blind."""
    return now + dt.timedelta(seconds=backoff_s(attempts + 1, rng))


class Retry:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        assert ctx.outcome is not None, "the send stage comes first"
        ctx.next = next_try(ctx.outcome, rows[0].attempts + 1, ctx.now, self.rng)  # the send just made
        if ctx.outcome.status == "retry" and ctx.next.not_before is not None:
            log.warning("%s to %s: retry in %.1f s (%s %s)", rows[0].channel, rows[0].recipient,
                        (ctx.next.not_before - ctx.now).total_seconds(), ctx.outcome.error_code, ctx.outcome.error)
        return rows
