"""The notify pipeline's pure parts, table-tested: the retry decision, the stage runner, a 叫应
step rebuilt from its outbox reason, and the operators' over-cap note."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from alerts.channel_alarm import ChannelAlarms
from alerts.channels.base import Outcome
from alerts.channels.sms import SmsChannel
from alerts.claims import Claims
from alerts.escalation import due_steps, step_of
from alerts.notify.deps import Deps
from alerts.notify.ratelimit import OverCap, over_cap_text
from alerts.notify.retry import RECONCILE_AFTER_S, after_error, backoff_s, next_try
from alerts.notify.stage import Ctx, MultiStage, Next, Route
from alerts.store import Notification, Store
from config import example_dir, load_config
from config.notify import Escalation
from formats.warning import WarningEvent

NOW = dt.datetime(2026, 7, 1, 8, 0, tzinfo=dt.UTC)


class Fixed(random.Random):
    """uniform() at its upper end: the longest backoff."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize(("outcome", "attempts", "expected"), [
    (Outcome("sent", provider_id="SM1"), 1, Next("sent")),
    (Outcome("failed", error_code="21211"), 1, Next("failed")),
    (Outcome("retry"), 1, Next("pending", NOW + dt.timedelta(seconds=1))),
    (Outcome("retry"), 3, Next("pending", NOW + dt.timedelta(seconds=4))),
    (Outcome("retry"), 20, Next("pending", NOW + dt.timedelta(seconds=60))),  # capped
    (Outcome("retry", retry_after_s=30), 1, Next("pending", NOW + dt.timedelta(seconds=30))),  # provider's wait
    (Outcome("retry", retry_after_s=0.5), 3, Next("pending", NOW + dt.timedelta(seconds=4))),  # ours is longer
    (Outcome("unknown", error="read timeout"), 1, Next("unknown", NOW + dt.timedelta(seconds=RECONCILE_AFTER_S))),
    (Outcome("unknown"), 9, Next("unknown", NOW + dt.timedelta(seconds=RECONCILE_AFTER_S))),  # never backs off
])
def test_next_try(outcome: Outcome, attempts: int, expected: Next) -> None:
    assert next_try(outcome, attempts, NOW, Fixed()) == expected


@pytest.mark.parametrize("attempts", [1, 2, 5, 30])
def test_backoff_is_jittered_within_half_to_whole_step(attempts: int) -> None:
    step = min(60.0, 2.0 ** (attempts - 1))
    draws = {backoff_s(attempts, random.Random(seed)) for seed in range(50)}
    assert all(step / 2 <= d <= step for d in draws)
    assert len(draws) > 1, "jitter spreads retries of many rows apart"


def test_a_crashed_dispatch_waits_one_attempt_longer() -> None:
    assert after_error(0, NOW, Fixed()) == NOW + dt.timedelta(seconds=1)
    assert after_error(2, NOW, Fixed()) == NOW + dt.timedelta(seconds=4)


@dataclass
class Tag:
    """A stage that records that it ran, and keeps rows (or drops them)."""

    name: str
    ran: list[str]
    keep: bool = True

    def exec(self, ctx: Ctx, rows: list) -> list:
        self.ran.append(self.name)
        return rows if self.keep else []


def test_multistage_runs_in_order_and_stops_when_a_stage_keeps_nothing() -> None:
    ran: list[str] = []
    pipeline = MultiStage(Tag("group", ran), Tag("rate-limit", ran, keep=False), Tag("render", ran))
    assert pipeline.exec(Ctx(now=NOW), ["row"]) == []
    assert ran == ["group", "rate-limit"]


def test_multistage_passes_the_rows_through() -> None:
    ran: list[str] = []
    assert MultiStage(Tag("a", ran), Tag("b", ran)).exec(Ctx(now=NOW), ["r1", "r2"]) == ["r1", "r2"]
    assert ran == ["a", "b"]


def test_route_picks_the_pipeline_by_the_first_row() -> None:
    ran: list[str] = []
    route = Route(lambda row: "cap" if row.startswith("cap") else "sms",
                  {"cap": Tag("broadcast", ran), "sms": Tag("message", ran)})
    route.exec(Ctx(now=NOW), ["cap:z1"])
    route.exec(Ctx(now=NOW), ["+8613800000001"])
    assert ran == ["broadcast", "message"]


ESC = Escalation()


@pytest.mark.parametrize("minutes", [0, 16, 31, 61, 200])
def test_a_step_is_rebuilt_from_its_reason_as_it_was_planned(minutes: int) -> None:
    since = NOW - dt.timedelta(minutes=minutes)
    for step in due_steps(level="red", escalation_since=since, red_since=since, acknowledged=False,
                          closed_or_cleared=False, cfg=ESC, now=NOW):
        assert step_of(step.reason, escalation_since=since, red_since=since, cfg=ESC) == step


@pytest.mark.parametrize("reason", ["escalation:county", "reminder:2", "raised", "reminder"])
def test_a_reason_that_names_no_step_of_the_episode_is_refused(reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        step_of(reason, escalation_since=None, red_since=None, cfg=ESC)


@pytest.mark.parametrize(("language", "words"), [
    ("zh-CN", ["+8613800000001", "王村长", "24小时内已发51条短信", "超出限额", "石桥沟", "红色预警", "电话确认"]),
    ("en", ["+8613800000001", "王村长", "51 SMS in 24 h", "over the cap", "Shiqiaogou", "red warning",
            "by phone"]),
])
def test_over_cap_note_in_the_operators_language(language: str, words: list[str]) -> None:
    text = over_cap_text(recipient="+8613800000001", name="王村长", sent=51, hours="24",
                         site="石桥沟" if language == "zh-CN" else "Shiqiaogou", language=language)
    assert all(w in text for w in words), text


def test_the_over_cap_note_names_the_claimed_rows_episode_not_an_earlier_rows(tmp_path: Path) -> None:
    """Grouping may put an earlier row of another episode first; the operators' note is about the
    red that went over the cap, the row the dispatcher claimed."""
    config = load_config(example_dir(), env={})
    store = Store(f"sqlite:///{tmp_path / 'alerts.db'}")
    deps = Deps(store=store, config=config, claims=Claims(store, "test", 30.0),
                alarms=ChannelAlarms(store, config, lambda: NOW), clock=lambda: NOW, rng=random.Random(1),
                sms=SmsChannel("AC" + "0" * 32, "token", "+15005550006", base_url="http://127.0.0.1:9"))

    def row(episode: str, level: str) -> Notification:
        event = WarningEvent(episode=episode, site="CH-001", subject="CH-001/GAS-01", rule="threshold",
                             kind="raised", level=level, previous="normal", ts=0, emitted_at=0, value=1.0,
                             threshold=1.0, unit="%LEL", detail={})
        return Notification(key=f"k-{episode}", channel="sms", episode=episode, site="CH-001", kind="raised",
                            level=level, recipient="+8613800000001", name="值班员", role="operator",
                            language="zh-CN", event=event.to_json().decode(), group_key="g", status="sent")

    earlier, claimed = row("ep-yellow", "yellow"), row("ep-red", "red")
    ctx = Ctx(now=NOW, claimed=claimed, count=50, decision="send_over_cap")
    assert OverCap(deps).exec(ctx, [earlier, claimed]) == [earlier, claimed]
    with store.session() as s:
        notes = list(s.scalars(select(Notification).where(Notification.kind == "over-cap")))
    operators = [r for r in config.recipients if r.role == "operator"]
    assert len(notes) == len(operators) > 0
    assert {n.episode for n in notes} == {"ep-red"} and {n.warning.level for n in notes} == {"red"}
    assert all("51条短信" in (n.body or "") for n in notes if n.language == "zh-CN")
    OverCap(deps).exec(ctx, [earlier, claimed])  # once a day per capped number and operator
    with store.session() as s:
        assert len(list(s.scalars(select(Notification).where(Notification.kind == "over-cap")))) == len(notes)
