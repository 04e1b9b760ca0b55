"""Claims: which alerts process may work on which outbox rows.

Several ``hazwatch alerts`` processes may share one database. A process works on an outbox row
only while it holds the row's lease (``claimed_by``, ``claimed_until``), and every write the
dispatcher makes is conditional on still holding it, so that a row is sent by one process only:

- :meth:`Claims.claim_due` takes due rows (``pending`` or ``unknown``, ``not_before <= now``)
  that nobody holds or whose lease has run out. On PostgreSQL the rows are chosen with
  ``SELECT ... FOR UPDATE SKIP LOCKED``, so processes claiming at the same moment take disjoint
  rows instead of queueing behind each other; on both backends the UPDATE that writes the lease
  repeats the "free" condition, a compare-and-set on the old lease (SQLite has one writer at a
  time and no SKIP LOCKED: the compare-and-set alone decides there).
- :meth:`Claims.take`: the same compare-and-set for rows named by id (the later rows of a group,
  the rows one reconciliation settles).
- :meth:`Claims.begin_send`: ``pending``/``unknown`` -> ``sending`` for all the rows or none,
  with the lease renewed, committed before the provider is called. The lease outlasts the longest
  provider call (:func:`lease_s`), so no other process can decide that the send went nowhere
  while it may still reach the provider.
- :meth:`Claims.expire`: ``sending`` rows whose lease ran out -- their process died or hung
  mid-send -- become ``unknown``, and the dispatcher reconciles them with the provider
  (``SmsChannel.find_sent``) exactly as one process does after a restart: only what the provider
  does not have is sent again.
- :meth:`Claims.write`: a dispatcher write, applied only to the rows this process still holds; a
  final status (sent, failed, suppressed) ends the lease.
- :meth:`Claims.release`: the rows a pass did not finish (still ``pending``/``unknown``) are let go.

Leases are written with the dispatcher's clock: hosts sharing a database must keep their clocks
within a few seconds of each other (NTP does), well inside :data:`LEASE_MARGIN_S`.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
from collections.abc import Collection
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update

from alerts.store import Notification, Store

__all__ = ["CAP_PUBLISH_TIMEOUT_S", "FINAL", "LEASE_MARGIN_S", "WAITING", "Claims", "died_here", "lease_s",
           "owner_id"]

FINAL = ("sent", "failed", "suppressed")
WAITING = ("pending", "unknown")
LEASE_MARGIN_S = 20.0
"""Slack on top of the longest provider call, s: a loaded host, clock differences between hosts."""
CAP_PUBLISH_TIMEOUT_S = 10.0
"""How long a CAP publish waits for its PUBACK, s (``alerts.service.CapPublisher.publish``)."""


def lease_s(sms_timeout_s: float) -> float:
    """How long a claim lasts, s. A create call can take ``sms_timeout_s`` to connect and as long
    again to read the answer (requests applies the timeout to each); a CAP publish waits
    :data:`CAP_PUBLISH_TIMEOUT_S`."""
    return 2 * max(sms_timeout_s, CAP_PUBLISH_TIMEOUT_S) + LEASE_MARGIN_S


def _pid_namespace() -> str:
    """The inode of this process's PID namespace (a container has its own), or ''."""
    try:
        return os.readlink("/proc/self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return ""


def owner_id() -> str:
    """``host:pid:random:pidns``: unique per dispatcher, and says where a claim came from."""
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{secrets.token_hex(4)}:{_pid_namespace()}"


def died_here(owner: str) -> bool:
    """True when ``owner`` was a process of this host and PID namespace that runs no more.

    Its leases need not run out: a restarted process takes over what its predecessor held at
    once. Anything unsure (another host or namespace, a reused pid, no permission) is False, and
    the lease is waited for as usual.
    """
    parts = owner.split(":")
    if len(parts) != 4 or not parts[3] or parts[3] != _pid_namespace() or parts[0] != socket.gethostname()[:24]:
        return False
    try:
        pid = int(parts[1])
    except ValueError:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


class _Lost(Exception):
    """A row we meant to send is no longer ours."""


class Claims:
    """The leases of one dispatcher (``owner``) on the outbox of ``store``; ``lease`` in s."""

    def __init__(self, store: Store, owner: str, lease: float) -> None:
        if len(owner) > 64:
            raise ValueError(f"claim owner longer than 64 characters: {owner!r}")
        self.store, self.owner = store, owner
        self.lease = dt.timedelta(seconds=lease)

    def _free(self, now: dt.datetime) -> ColumnElement[bool]:
        """Nobody holds the row, its lease ran out, or it is ours already."""
        return or_(Notification.claimed_until.is_(None), Notification.claimed_until < now,
                   Notification.claimed_by == self.owner)

    def _claim(self, where: list[ColumnElement[bool]], now: dt.datetime, limit: int | None) -> list[Notification]:
        with self.store.session.begin() as s:
            pick = select(Notification.id).where(*where, self._free(now)).order_by(Notification.id)
            if limit is not None:
                pick = pick.limit(limit)
            ids = list(s.scalars(pick.with_for_update(skip_locked=True)))  # no-op on SQLite
            if not ids:
                return []
            # the WHERE again: on SQLite another process may have claimed a row since the SELECT
            rows = s.scalars(update(Notification).where(Notification.id.in_(ids), *where, self._free(now))
                             .values(claimed_by=self.owner, claimed_until=now + self.lease)
                             .returning(Notification).execution_options(synchronize_session=False)).all()
        return sorted(rows, key=lambda r: r.id)

    def claim_due(self, now: dt.datetime, *, after: int = 0, limit: int = 1) -> list[Notification]:
        """Claim up to ``limit`` due rows with an id above ``after``, oldest first."""
        return self._claim([Notification.status.in_(WAITING), Notification.not_before <= now,
                            Notification.id > after], now, limit)

    def take(self, ids: Collection[int], now: dt.datetime, status: str) -> list[Notification]:
        """Claim those of ``ids`` that are in ``status`` and free; the rows as claimed."""
        if not ids:
            return []
        return self._claim([Notification.id.in_(ids), Notification.status == status], now, None)

    def begin_send(self, ids: Collection[int], now: dt.datetime, **values: Any) -> bool:
        """Mark all ``ids`` ``sending`` (with ``values``) and renew their lease, or none of them
        when any is no longer ours: then another process took it over and False is returned."""
        try:
            with self.store.session.begin() as s:
                done = s.execute(update(Notification).where(
                    Notification.id.in_(ids), Notification.claimed_by == self.owner,
                    Notification.status.in_(WAITING)).values(status="sending", claimed_until=now + self.lease,
                                                             **values)
                    .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
                if done != len(ids):
                    raise _Lost  # rolls the partial update back
        except _Lost:
            return False
        return True

    def write(self, ids: Collection[int] | None, *, only: Collection[str] | None = None,
              **values: Any) -> set[int]:
        """Update the rows of ``ids`` (None: every row we hold) that we still hold and whose
        status is in ``only`` (None: any); a final status ends the lease. The ids written."""
        where = [Notification.claimed_by == self.owner]
        if ids is not None:
            if not ids:
                return set()
            where.append(Notification.id.in_(ids))
        if only is not None:
            where.append(Notification.status.in_(only))
        if values.get("status") in FINAL:
            values = {**values, "claimed_by": None, "claimed_until": None}
        with self.store.session.begin() as s:
            return set(s.scalars(update(Notification).where(*where).values(**values)
                                 .returning(Notification.id).execution_options(synchronize_session=False)))

    def _free_dead(self, now: dt.datetime) -> None:
        """End at once the leases of holders that died on this host (:func:`died_here`)."""
        with self.store.session() as s:
            holders = set(s.scalars(select(Notification.claimed_by).distinct().where(
                Notification.claimed_until >= now, Notification.claimed_by != self.owner)))
        dead = [h for h in holders if h and died_here(h)]
        if dead:
            with self.store.session.begin() as s:
                s.execute(update(Notification).where(Notification.claimed_by.in_(dead))
                          .values(claimed_until=now - dt.timedelta(seconds=1))
                          .execution_options(synchronize_session=False))

    def release(self) -> int:
        """Let go of the rows we hold that are still waiting (a pass is over)."""
        with self.store.session() as s:
            held = s.scalar(select(Notification.id).where(
                Notification.claimed_by == self.owner, Notification.status.in_(WAITING)).limit(1))
        if held is None:  # a read only: an idle pass takes no write lock
            return 0
        return len(self.write(None, only=WAITING, claimed_by=None, claimed_until=None))

    def expire(self, now: dt.datetime) -> int:
        """``sending`` rows whose lease ran out (or that have none: written before leases existed,
        or whose holder died on this host: :func:`died_here`) become ``unknown``, due now: the
        dispatcher reconciles them. How many."""
        self._free_dead(now)
        lapsed = [Notification.status == "sending",
                  or_(Notification.claimed_until.is_(None), Notification.claimed_until < now)]
        with self.store.session() as s:
            if s.scalar(select(Notification.id).where(*lapsed).limit(1)) is None:
                return 0
        with self.store.session.begin() as s:
            return s.execute(update(Notification).where(*lapsed).values(
                status="unknown", not_before=now, claimed_by=None, claimed_until=None)
                .execution_options(synchronize_session=False)).rowcount or 0  # type: ignore[attr-defined]
