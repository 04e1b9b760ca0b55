"""Record: what a send did goes into the outbox, and each final result to the deliveries feed.

:func:`finish` is the one place a row gets a final status (sent, failed, suppressed); the
:class:`Record` stage writes what the retry stage decided after a send.
"""

from __future__ import annotations

from typing import Any

from alerts.channels.registry import outbox_spec
from alerts.deliveries import apply_recorded_deliveries
from alerts.notify.deps import Deps
from alerts.notify.stage import Ctx
from alerts.segments import segments
from alerts.store import Notification

__all__ = ["Record", "finish", "int_code"]


def int_code(code: str | None) -> int | None:
    """A provider's numeric code for the outbox's integer column; text codes stay in ``error``."""
    return int(code) if code and code.lstrip("-").isdigit() and len(code) < 10 else None


def _kind(channel: str) -> str:
    """The registry kind of an outbox channel; a name the registry lacks is reported as SMS
    rather than lose the feed record of a status already committed."""
    try:
        return outbox_spec(channel).kind
    except KeyError:
        return "sms"


def finish(deps: Deps, rows: list[Notification], status: str, **values: Any) -> None:
    """Give ``rows`` their final ``status`` (with ``values``) and report each to the feed; rows
    another process has taken over meanwhile are left to it (it records their result)."""
    written = deps.claims.write([r.id for r in rows], status=status, **values)
    for r in rows:
        if r.id not in written:
            continue
        broadcast = _kind(r.channel) == "broadcast"
        record = {"type": "broadcast" if broadcast else "sms", "key": r.key, "episode": r.episode,
                  "site": r.site, "kind": r.kind, "level": r.level, "status": status, "reason": r.reason,
                  "provider_id": values.get("provider_id"), "error": values.get("error"),
                  "suppressed_reason": values.get("suppressed_reason")}
        body = values.get("body", r.body)
        if not broadcast:
            record.update(channel=r.channel, to=r.recipient, role=r.role, body=body, segments=segments(body or ""))
        else:
            record.update(zone=r.recipient, cap=body)
        deps.on_result(record)


class Record:
    """After a send: sent and failed are final; a retry waits in ``pending``, an unknown send in
    ``unknown`` until the provider is asked. Sent rows go on (to the over-cap stage)."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def exec(self, ctx: Ctx, rows: list[Notification]) -> list[Notification]:
        outcome, nxt = ctx.outcome, ctx.next
        assert outcome is not None and nxt is not None, "the send and retry stages come first"
        code, error = int_code(outcome.error_code), outcome.error
        if error is None and outcome.error_code is not None and code is None:
            error = outcome.error_code  # a text code (isv.BUSINESS_LIMIT_CONTROL) is kept as the error
        if nxt.status == "sent":
            finish(self.deps, rows, "sent", provider_id=outcome.provider_id, sent_at=ctx.now, body=ctx.body)
            if outcome.provider_id:
                apply_recorded_deliveries(self.deps.store, outcome.provider_id)  # a fast provider may call back first
            return rows
        ids = [r.id for r in rows]
        if nxt.status == "failed":
            finish(self.deps, rows, "failed", error_code=code, error=error, body=ctx.body)
        elif nxt.status == "pending":
            self.deps.claims.write(ids, status="pending", error_code=code, error=error, not_before=nxt.not_before)
        else:  # unknown: it may have gone out; never resent without asking the provider
            self.deps.claims.write(ids, status="unknown", error=error, not_before=nxt.not_before)
        return []
