"""Noise control on real brokers with an injected clock: grouping, inhibition, silences, rate
caps with red preserved, and retries on 503 / 20429 without a second send."""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import select

from alerts.silences import SilenceService
from alerts.store import Action, Fault, Notification
from tests.e2e.alerts_harness import (  # noqa: F401 - harness_factory is a fixture
    OFFICER_TD,
    OPERATORS,
    T0,
    Harness,
    harness_factory,
)
from tests.e2e.conftest import wait_until

OP1, OP2 = sorted(OPERATORS)
DECIDED = ("sent", "suppressed", "failed")


def rows_for(h: Harness, phone: str) -> list[Notification]:
    with h.service.store.session() as s:
        return list(s.scalars(select(Notification).where(Notification.recipient == phone).order_by(Notification.id)))


def recorded(h: Harness, phone: str) -> list[Notification]:
    """The phone's rows once every one is decided: the provider answers before the dispatcher
    records the answer, so an SMS seen at the fake may still be 'sending' in the outbox."""
    wait_until(lambda: all(r.status in DECIDED for r in rows_for(h, phone)), 30,
               f"the outbox rows of {phone} to be decided")
    return rows_for(h, phone)


def test_grouping_one_message_per_recipient_and_red_bypasses_the_wait(harness_factory) -> None:
    h = harness_factory(notify={"group_wait_s": 30})
    for subject in ("TD-001/PZ-01", "TD-001/FB-01", "TD-001/DB-01"):
        h.send("raised", "yellow", "normal", 0, subject=subject)
    wait_until(lambda: len(rows_for(h, OP1)) == 3, 30, "three planned notices")
    h.clock.set(0.25)  # 15 s: still inside the grouping window
    h.service.intake.tick()
    assert h.to(OP1) == []
    h.clock.set(0.5)  # 30 s: the window is over -> one SMS with all three
    wait_until(lambda: h.to(OP1), 30, "the grouped SMS")
    assert len(h.to(OP1)) == 1 and "3项" in h.to(OP1)[0], h.to(OP1)
    assert len({r.provider_id for r in recorded(h, OP1)}) == 1
    wait_until(lambda: len(h.to(OFFICER_TD)) == 1, 30, "the officer's grouped SMS")

    h.send("escalated", "red", "yellow", 0.6, subject="TD-001/PZ-01")  # red: no wait
    wait_until(lambda: len(h.to(OP1)) == 2, 30, "the red SMS without waiting")
    assert "红色" in h.to(OP1)[1]


def test_site_at_red_inhibits_lower_levels_of_the_same_site(harness_factory) -> None:
    h = harness_factory()
    h.send("raised", "red", "normal", 0, subject="TD-001/PZ-01")
    wait_until(lambda: h.to(OP1), 30, "the red SMS")
    h.send("raised", "orange", "normal", 0.1, subject="TD-001/FB-01")
    wait_until(lambda: len(rows_for(h, OP1)) == 2, 30, "the orange notice")
    orange = rows_for(h, OP1)[1]
    assert orange.status == "suppressed" and "site at red" in (orange.suppressed_reason or "")
    assert len(h.to(OP1)) == 1
    h.send("escalated", "red", "orange", 0.2, subject="TD-001/FB-01")  # red itself is never inhibited
    wait_until(lambda: len(h.to(OP1)) == 2, 30, "the second red")


def test_inhibition_rules_come_from_the_configuration(harness_factory) -> None:
    """notify.inhibit replaces the default rules: here a site at orange holds its yellow messages,
    and the default "site at red" rule is gone."""
    h = harness_factory(notify={"inhibit": [{"name": "site at orange", "source": {"site_level": "orange"},
                                             "levels": ["blue", "yellow"], "kinds": ["raised", "escalated"]}]})
    h.send("raised", "orange", "normal", 0, subject="TD-001/PZ-01")
    wait_until(lambda: h.to(OP1), 30, "the orange SMS")
    h.send("raised", "yellow", "normal", 0.1, subject="TD-001/FB-01")
    h.send("raised", "orange", "normal", 0.2, subject="TD-001/DB-01")  # not a target level: it goes out
    wait_until(lambda: len(rows_for(h, OP1)) == 3, 30, "the yellow and the second orange notice")
    yellow, orange = rows_for(h, OP1)[1:]
    assert yellow.status == "suppressed" and yellow.suppressed_reason == "inhibited: site at orange"
    assert orange.status != "suppressed"
    wait_until(lambda: len(h.to(OP1)) == 2, 30, "the second orange SMS")


def test_silence_hides_up_to_its_max_level_and_is_audited(harness_factory) -> None:
    h = harness_factory()
    silence = SilenceService(h.service.store).create(
        {"subject": "TD-001/GNSS-01"}, T0 - dt.timedelta(minutes=1), T0 + dt.timedelta(hours=2),
        created_by="值班员王磊", reason="GNSS 天线检修", kind="maintenance", now=T0)
    h.send("raised", "yellow", "normal", 0, subject="TD-001/GNSS-01")
    wait_until(lambda: rows_for(h, OP1), 30, "the yellow notice")
    row = rows_for(h, OP1)[0]
    assert row.status == "suppressed" and row.silence_id == silence.id
    h.send("escalated", "red", "yellow", 1, subject="TD-001/GNSS-01")  # red passes a default silence
    wait_until(lambda: h.to(OP1), 30, "the red SMS despite the silence")
    with h.service.store.session() as s:
        audit = s.scalars(select(Action).where(Action.silence_id == silence.id)).all()
    assert [(a.action, a.actor) for a in audit] == [("silence_create", "值班员王磊")]
    h.send("cleared", "normal", "red", 2, subject="TD-001/GNSS-01")  # heard the red -> hears the all-clear
    wait_until(lambda: len(h.to(OP1)) == 2, 30, "the all-clear")
    assert "解除" in h.to(OP1)[1]


def _fill_history(h: Harness, phone: str, n: int) -> None:
    with h.service.store.session.begin() as s:
        for i in range(n):
            s.add(Notification(key=f"history-{phone}-{i}", channel="sms", episode=f"old-{i}", site="TD-001",
                               kind="raised", level="yellow", recipient=phone, role="operator", language="zh-CN",
                               event="{}", group_key=f"old-{i}", status="sent", provider_id=f"SMold{phone}{i}",
                               created_at=T0 - dt.timedelta(hours=1), not_before=T0 - dt.timedelta(hours=1),
                               sent_at=T0 - dt.timedelta(hours=1)))


def test_rate_cap_drops_yellow_keeps_red_and_tells_operators(harness_factory) -> None:
    h = harness_factory()
    _fill_history(h, OP1, 45)  # 45 of 50 used: yellow is held back to keep room for red
    h.send("raised", "yellow", "normal", 0, subject="TD-001/PZ-01")
    wait_until(lambda: h.to(OP2), 30, "the yellow SMS to the other operator")
    wait_until(lambda: rows_for(h, OP1)[-1].status == "suppressed", 30, "OP1's yellow decided")
    assert "rate limit" in (rows_for(h, OP1)[-1].suppressed_reason or "")
    assert h.to(OP1) == []

    _fill_history(h, OP1, 0)
    with h.service.store.session.begin() as s:  # 50 sent: at the cap
        for i in range(45, 50):
            s.add(Notification(key=f"history-{OP1}-{i}", channel="sms", episode=f"old-{i}", site="TD-001",
                               kind="raised", level="yellow", recipient=OP1, role="operator", language="zh-CN",
                               event="{}", group_key=f"old-{i}", status="sent", provider_id=f"SMold{OP1}{i}",
                               created_at=T0, not_before=T0, sent_at=T0))
    h.send("raised", "red", "normal", 1, subject="TD-001/FB-01")
    wait_until(lambda: any("红色" in b for b in h.to(OP1)), 30, "red goes out over the cap")
    wait_until(lambda: any("超出限额" in b for b in h.to(OP2)), 30, "the operators are told")


def test_retry_on_503_and_20429_sends_exactly_once(harness_factory) -> None:
    h = harness_factory()
    httpx.post(f"{h.twilio.url}/_fake/fail", json={"mode": "503", "count": 2, "to": OP1})
    httpx.post(f"{h.twilio.url}/_fake/fail", json={"mode": "20429", "count": 1, "to": OP1})
    h.send("raised", "red", "normal", 0, subject="TD-001/PZ-01")
    minutes = 0.0

    def delivered() -> bool:
        nonlocal minutes
        # move the clock past each backoff, in steps small beside the service's pass (TIMERS_S):
        # 6 minutes on, the reminder step of the red warning is due and would go out first
        minutes += 0.1
        h.clock.set(minutes)
        return bool(h.to(OP1))

    wait_until(delivered, 60, "the SMS after three refusals")
    row = recorded(h, OP1)[0]
    assert row.status == "sent" and row.attempts == 4
    assert len(h.to(OP1)) == 1
    wait_until(lambda: len(h.to(OP2)) == 1, 30, "OP2 unaffected")


def cap_rows(h: Harness) -> list[Notification]:
    with h.service.store.session() as s:
        return list(s.scalars(select(Notification).where(Notification.channel == "cap").order_by(Notification.id)))


def test_one_loudspeaker_alert_per_site_and_all_clear_after_the_last_red(harness_factory) -> None:
    h = harness_factory()
    h.send("raised", "red", "normal", 0, subject="TD-001/PZ-01")
    h.send("raised", "red", "normal", 0, subject="TD-001/FB-01")
    wait_until(lambda: len(cap_rows(h)) == 2 and all(r.status in DECIDED for r in cap_rows(h)), 30, "CAP decided")
    first, second = cap_rows(h)
    assert first.status == "sent" and second.status == "suppressed"
    assert second.suppressed_reason == f"covered by CAP {first.provider_id}"

    h.send("cleared", "normal", "red", 1, subject="TD-001/PZ-01")  # the owner clears, FB-01 is still red
    wait_until(lambda: any(r.kind == "cap-allclear" for r in cap_rows(h)), 30, "the all-clear planned")
    h.clock.set(2)
    h.service.intake.tick()
    assert [r.status for r in cap_rows(h) if r.kind == "cap-allclear"] == ["pending"], "waits for FB-01"

    h.send("cleared", "normal", "red", 3, subject="TD-001/FB-01")
    minutes = 3.0

    def cleared() -> list[str]:
        nonlocal minutes
        minutes += 0.05  # the clock moves on: a deferred all-clear is looked at again
        h.clock.set(minutes)
        return [r.status for r in cap_rows(h) if r.kind == "cap-allclear"]

    # FB-01's loudspeakers never sounded for it alone, so it has no all-clear of its own
    wait_until(lambda: cleared() == ["sent"], 30, f"one all-clear after the last red: {cleared()}")


def test_false_alarm_withdraws_the_broadcast_with_a_cap_cancel(harness_factory) -> None:
    from alerts.episodes import EpisodeService

    h = harness_factory()
    episode = h.send("raised", "red", "normal", 0, subject="TD-001/GNSS-01")
    wait_until(lambda: [r.status for r in cap_rows(h)] == ["sent"], 30, "the CAP Alert")
    EpisodeService(h.service.store).mark_false_alarm(episode, by="值班员陈静", reason="GNSS 多路径干扰")
    wait_until(lambda: [r.kind for r in cap_rows(h) if r.status == "sent"] == ["cap-alert", "cap-cancel"], 30,
               "the CAP Cancel")
    alert, cancel = cap_rows(h)
    assert "<msgType>Cancel</msgType>" in cancel.body and alert.provider_id in cancel.body


def test_sensor_in_fault_inhibits_its_threshold_warnings(harness_factory) -> None:
    import time

    from config.topics import HEALTH
    from formats.health import SensorHealth, encode

    h = harness_factory()
    now = int(time.time() * 1000)
    h.producer.send(HEALTH, key=b"TD-001", value=encode(SensorHealth(
        site="TD-001", subject="TD-001/WL-01", sensor="WL-01", check="stuck", state="fault", ts=now,
        detected_at=now, value=350.1, detail={"active": ["stuck"], "episode_ts": now}))).get(10)

    def in_fault() -> bool:
        with h.service.store.session() as s:
            return s.get(Fault, "TD-001/WL-01") is not None

    wait_until(in_fault, 30, "the fault recorded")
    h.send("raised", "orange", "normal", 0, subject="TD-001/WL-01")
    wait_until(lambda: rows_for(h, OP1), 30, "the orange notice")
    assert rows_for(h, OP1)[0].status == "suppressed"
    assert "fault" in (rows_for(h, OP1)[0].suppressed_reason or "")
    h.send("escalated", "red", "orange", 1, subject="TD-001/WL-01")  # red still goes out
    wait_until(lambda: h.to(OP1), 30, "the red SMS")
