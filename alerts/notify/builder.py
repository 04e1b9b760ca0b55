"""The notify path, top to bottom, in one place.

Intake (:class:`alerts.pipeline.Intake`, when a warning event arrives or a 叫应 step falls due)::

    plan (routing: who, on which channels)
      -> silence / inhibit  (recorded as ``suppressed``, with the reason)
      -> dedup              (the outbox's unique idempotency key: a repeat records nothing)
      -> record             (the outbox row is the promise; nothing is sent before it exists)

Dispatch (:func:`build`, for each outbox row the dispatcher claims) is the pipeline below. A new
channel needs no stage: it is a module in ``alerts/channels/`` and a line in its registry.
"""

from __future__ import annotations

from alerts.channels.registry import outbox_spec
from alerts.notify.broadcast import Broadcast
from alerts.notify.deps import Deps
from alerts.notify.gather import DropAnswered, Group
from alerts.notify.ratelimit import OverCap, RateLimit
from alerts.notify.reconcile import Reconcile
from alerts.notify.record import Record
from alerts.notify.render import Render
from alerts.notify.retry import Retry
from alerts.notify.send import Send
from alerts.notify.stage import MultiStage, Route, Stage
from alerts.store import Notification

__all__ = ["build"]


def _route(row: Notification) -> str:
    if outbox_spec(row.channel).kind == "broadcast":
        return "broadcast"
    return "reconcile" if row.status == "unknown" else "message"


def build(deps: Deps) -> Stage:
    """The dispatch pipeline of one claimed outbox row."""
    message = MultiStage(
        Group(deps),         # the recipient's rows of one site and channel go as one message
        DropAnswered(deps),  # 叫应 steps an acknowledgement answered are not sent
        RateLimit(deps),     # the per-number cap, with room kept for red
        Render(deps),        # the text, in the recipient's language, fitted to the SMS budget
        Send(deps),          # marked sending (committed), then the channel is called once
        Retry(deps.rng),     # the only place that decides whether and when to try again
        Record(deps),        # sent / failed / pending / unknown into the outbox, and the feed
        OverCap(deps),       # red sent past the cap: the operators are told
    )
    return Route(_route, {
        "message": message,
        "reconcile": Reconcile(deps),  # unknown: asked at the provider before anything is resent
        "broadcast": Broadcast(deps),  # CAP to the zone's loudspeakers
    })
