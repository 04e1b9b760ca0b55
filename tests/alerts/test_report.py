"""``hazwatch report`` numbers on a hand-built dataset, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from alerts.report import SMS_OUTCOMES, nearest_rank, render_report, report, sms_outcome
from alerts.store import Action, Episode, Notification, Store
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)

T0 = dt.datetime(2025, 6, 1, 0, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def at(hours: float = 0, minutes: float = 0) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours, minutes=minutes)


_keys = itertools.count()


SITES = {"chemical": "CH-001", "tailings": "TD-001", "rain": "RG-001"}


def episode(eid: str, kind: str, peak: str, raised: dt.datetime, *,
            escalation: dt.datetime | None = None, acked: dt.datetime | None = None,
            false_alarm: bool = False) -> Episode:
    return Episode(id=eid, site=SITES[kind],
                   subject="s", rule="r", kind=kind, enterprise="e", state="active", level=peak,
                   peak=peak, unit="", raised_ts=0, raised_at=raised, escalation_since=escalation,
                   acknowledged_at=acked, acknowledged_by="x" if acked else None,
                   false_alarm=false_alarm, updated_at=raised)


def note(channel: str, status: str, delivery: str | None = None, segments: int | None = None,
         created: dt.datetime | None = None) -> Notification:
    created = created or at(1)
    return Notification(key=f"k{next(_keys)}", channel=channel, episode="e1", site="CH-001",
                        kind="raised", level="red", recipient="+8613800138000", role="officer",
                        language="zh-CN", event="{}", status=status, delivery_status=delivery,
                        segments=segments, created_at=created, not_before=created)


@pytest.fixture
def dataset(store: Store) -> Store:
    rows = [
        episode("e1", "chemical", "red", at(1), escalation=at(1), acked=at(1, 5)),
        episode("e2", "chemical", "orange", at(2), escalation=at(2, 10), acked=at(2, 40)),
        episode("e3", "tailings", "red", at(3), acked=at(3, 12)),  # no escalation_since: raised_at
        episode("e4", "tailings", "orange", at(4), escalation=at(4)),  # never acknowledged
        episode("e5", "rain", "yellow", at(5), acked=at(5, 1)),  # below orange: not timed
        episode("e6", "rain", "red", at(6), escalation=at(6, 10), acked=at(6, 5)),  # acked early: 0
        episode("e7", "chemical", "blue", at(7), false_alarm=True),
        episode("e10", "tailings", "yellow", T0),  # at since: inside
        episode("e8", "chemical", "red", T0 - dt.timedelta(minutes=1), escalation=T0),  # before
        episode("e9", "rain", "red", T0 + DAY, escalation=T0 + DAY),  # at until: outside
    ]
    actions = [
        Action(episode_id="e1", action="dispose", actor="x", at=at(1, 20), category="repair"),
        Action(episode_id="e1", action="dispose", actor="y", at=at(1, 50), category="other"),
        Action(episode_id="e2", action="acknowledge", actor="x", at=at(2, 40)),
        Action(episode_id="e4", action="dispose", actor="x", at=at(30), category="on_site_check"),
        Action(episode_id="e8", action="dispose", actor="x", at=at(1), category="repair"),
    ]
    notes = [
        note("sms", "sent", "delivered", 2), note("sms", "sent", "delivered", 1),
        note("sms", "sent", None, 2), note("sms", "sent", "sent", 1),
        note("sms", "failed"), note("sms", "sent", "undelivered", 1),
        note("sms", "pending"), note("sms", "unknown"), note("sms", "suppressed"),
        note("sms", "sent", "delivered", 3, created=T0 - dt.timedelta(seconds=1)),
        note("cap", "sent"), note("cap", "sent"), note("cap", "failed"), note("cap", "suppressed"),
        note("cap", "sent", created=T0 + DAY),
    ]
    with store.session.begin() as s:
        s.add_all(rows)
        s.flush()
        s.add_all([*actions, *notes])
    return store


def test_report_numbers(dataset: Store) -> None:
    data = report(dataset, T0, T0 + DAY)
    assert data["since"] == T0 and data["until"] == T0 + DAY
    assert data["episodes"] == 8 and data["false_alarms"] == 1
    assert data["by_level"] == {"blue": 1, "yellow": 2, "orange": 2, "red": 3}
    assert data["by_kind"] == {"chemical": 3, "tailings": 3, "rain": 2}
    assert data["by_level_kind"] == {
        "blue": {"chemical": 1, "tailings": 0, "rain": 0},
        "yellow": {"chemical": 0, "tailings": 1, "rain": 1},
        "orange": {"chemical": 1, "tailings": 1, "rain": 0},
        "red": {"chemical": 1, "tailings": 1, "rain": 1},
    }
    # waits at orange+: e1 5, e2 30, e3 12, e6 0 (acked before it escalated); e4 unanswered
    assert data["acknowledge"] == {"level": "orange", "episodes": 5, "acknowledged": 4,
                                   "unacknowledged": 1, "median_min": 8.5, "p90_min": 30.0,
                                   "max_min": 30.0}
    assert data["disposal"] == {"episodes": 8, "disposed": 2, "rate": 0.25}
    assert data["sms"] == {"delivered": 2, "awaiting_receipt": 2, "failed": 2, "pending": 2,
                           "suppressed": 1, "total": 9, "segments_sent": 6}
    assert data["broadcasts"] == {"sent": 2, "failed": 1, "pending": 0, "suppressed": 1}


def test_report_ack_level_follows_configuration(dataset: Store) -> None:
    ack = report(dataset, T0, T0 + DAY, ack_level="red")["acknowledge"]
    assert (ack["episodes"], ack["acknowledged"]) == (3, 3)
    assert (ack["median_min"], ack["p90_min"], ack["max_min"]) == (5.0, 12.0, 12.0)


def test_empty_window(dataset: Store) -> None:
    data = report(dataset, T0 + 2 * DAY, T0 + 3 * DAY)
    assert data["episodes"] == 0 and data["disposal"]["rate"] is None
    assert data["acknowledge"]["median_min"] is None and data["sms"]["total"] == 0
    assert "0/0 = -" in render_report(data)


def test_bad_window(store: Store) -> None:
    with pytest.raises(ValueError, match="must be after since"):
        report(store, T0, T0)
    with pytest.raises(ValueError, match="timezone"):
        report(store, dt.datetime(2025, 6, 1), T0)


def test_render(dataset: Store) -> None:
    from zoneinfo import ZoneInfo

    text = render_report(report(dataset, T0, T0 + DAY), ZoneInfo("Asia/Shanghai"))
    assert "2025-06-01 08:00 CST — 2025-06-02 08:00 CST" in text
    assert "处置率 (disposal rate): 2/8 = 25.0%" in text
    assert ("4/5 已确认 (acknowledged); 中位数 (median) 8.5 min, P90 30 min, "
            "最长 (max) 30 min") in text
    assert "送达 (delivered) 2, 待回执 (awaiting receipt) 2, 失败 (failed) 2" in text
    assert "广播 (CAP broadcasts): 已发布 (sent) 2" in text
    red = next(line for line in text.splitlines() if line.startswith("红 (red)"))
    assert red.split()[2:] == ["1", "1", "1", "3"]


@pytest.mark.parametrize(("status", "delivery", "outcome"), [
    ("sent", "delivered", "delivered"), ("sent", "read", "delivered"),
    ("sent", None, "awaiting_receipt"), ("sent", "queued", "awaiting_receipt"),
    ("sent", "sent", "awaiting_receipt"), ("sent", "undelivered", "failed"),
    ("sent", "failed", "failed"), ("failed", None, "failed"), ("pending", None, "pending"),
    ("sending", None, "pending"), ("unknown", None, "pending"), ("suppressed", None, "suppressed"),
])
def test_sms_outcome(status: str, delivery: str | None, outcome: str) -> None:
    assert sms_outcome(status, delivery) == outcome and outcome in SMS_OUTCOMES


def test_nearest_rank() -> None:
    assert nearest_rank([5.0], 90) == 5.0
    assert nearest_rank([3.0, 1.0, 2.0], 50) == 2.0
    assert nearest_rank(list(map(float, range(1, 11))), 90) == 9.0
    assert nearest_rank(list(map(float, range(1, 12))), 90) == 10.0


def test_sms_of_every_sms_channel_count_and_chat_groups_do_not(store: Store) -> None:
    with store.session.begin() as s:
        s.add(episode("e1", "chemical", "red", at(1)))
        s.flush()
        s.add_all([note("sms", "sent", "delivered", 1), note("sms-aliyun", "sent", None, 1),
                   note("sms-tencent", "failed"), note("wecom-robot", "sent"), note("sms-fallback", "sent")])
    data = report(store, T0, T0 + DAY)
    assert data["sms"]["total"] == 3 and data["sms"]["failed"] == 1
    assert data["sms"]["delivered"] == 1 and data["sms"]["awaiting_receipt"] == 1
