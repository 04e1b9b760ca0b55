"""Answer or escalate (叫应, issue 3): exact timings of escalation steps and red reminders, and the
texts they send. Explicit aware datetimes, no sleeping: the clock is an argument.

Example configuration: min_level orange; county after 10 min, city 20, province 30; red reminder
every 5 min to officers and operators.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from alerts.escalation import Step, due_steps, next_due, render_escalation
from alerts.segments import segments
from config import load_config
from config.notify import Escalation, EscalationStep
from formats.warning import WarningEvent

SH = ZoneInfo("Asia/Shanghai")
CFG = load_config("config/example")
ESC = CFG.settings.notify.escalation
T0 = datetime(2025, 11, 23, 14, 5, tzinfo=SH)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def due(level: str, minutes: float, *, escalation_since: datetime | None = T0, red_since: datetime | None = None,
        acknowledged: bool = False, closed_or_cleared: bool = False, cfg: Escalation = ESC) -> list[str]:
    steps = due_steps(level=level, escalation_since=escalation_since, red_since=red_since,
                      acknowledged=acknowledged, closed_or_cleared=closed_or_cleared, cfg=cfg, now=at(minutes))
    return [s.reason for s in steps]


def nxt(level: str, minutes: float, *, escalation_since: datetime | None = T0, red_since: datetime | None = None,
        acknowledged: bool = False, cfg: Escalation = ESC) -> datetime | None:
    return next_due(level=level, escalation_since=escalation_since, red_since=red_since,
                    acknowledged=acknowledged, closed_or_cleared=False, cfg=cfg, now=at(minutes))


COUNTY, CITY, PROVINCE = "escalation:county", "escalation:city", "escalation:province"


@pytest.mark.parametrize(("level", "minutes", "expected"), [
    ("orange", 0, []),
    ("orange", 9 + 59 / 60, []),
    ("orange", 10, [COUNTY]),
    ("orange", 19.99, [COUNTY]),
    ("orange", 20, [COUNTY, CITY]),
    ("orange", 30, [COUNTY, CITY, PROVINCE]),
    ("orange", 600, [COUNTY, CITY, PROVINCE]),  # all already due, not only the newest
    ("yellow", 30, []),  # below min_level: nothing produced
    ("blue", 30, []),
])
def test_escalation_timings(level: str, minutes: float, expected: list[str]) -> None:
    assert due(level, minutes) == expected


@pytest.mark.parametrize(("minutes", "expected"), [
    (0, []),
    (4 + 59 / 60, []),
    (5, ["reminder:1"]),
    (9.99, ["reminder:1"]),
    (10, [COUNTY, "reminder:2"]),
    (15, [COUNTY, "reminder:3"]),
    (20, [COUNTY, CITY, "reminder:4"]),
    (30, [COUNTY, CITY, PROVINCE, "reminder:6"]),
])
def test_red_reminders_every_5_min(minutes: float, expected: list[str]) -> None:
    assert due("red", minutes, red_since=T0) == expected


def test_steps_carry_exact_due_times_and_audiences() -> None:
    steps = due_steps(level="red", escalation_since=T0, red_since=at(3), acknowledged=False,
                      closed_or_cleared=False, cfg=ESC, now=at(30))
    assert steps == [
        Step("escalation", "county", 0, at(10), ("regulators:county",)),
        Step("escalation", "city", 0, at(20), ("regulators:city",)),
        Step("escalation", "province", 0, at(30), ("regulators:province",)),
        Step("reminder", None, 5, at(28), ("officers", "operators")),
    ]


@pytest.mark.parametrize(("acknowledged", "closed_or_cleared"), [(True, False), (False, True), (True, True)])
def test_acknowledged_or_cleared_stops_everything(acknowledged: bool, closed_or_cleared: bool) -> None:
    for minutes in (10, 20, 30, 35, 120):
        assert due("red", minutes, red_since=T0, acknowledged=acknowledged, closed_or_cleared=closed_or_cleared) == []
    assert nxt("red", 12, red_since=T0, acknowledged=True) is None


def test_below_min_level_produces_nothing_and_the_clock_runs_on() -> None:
    # Orange at T0, down to yellow at 12 (county already sent at 10), back to orange at 25.
    sent: list[str] = []
    for minutes, level in [(10, "orange"), (12, "yellow"), (20, "yellow"), (24, "yellow"), (25, "orange")]:
        sent += [r for r in due(level, minutes) if r not in sent]
    # The dip is not an answer: at 25 the city step (due at 20) goes at once; county is not repeated.
    assert sent == [COUNTY, CITY]
    assert nxt("yellow", 20) is None
    assert nxt("orange", 25) == at(30)


def test_red_down_to_orange_stops_reminders_but_not_escalation() -> None:
    assert due("orange", 12, red_since=T0) == [COUNTY]
    assert nxt("orange", 12, red_since=T0) == at(20)


def test_reminders_need_red_since_and_a_period() -> None:
    assert due("red", 12) == [COUNTY]
    no_reminders = ESC.model_copy(update={"red_reminder_every_min": None})
    assert due("red", 12, red_since=T0, cfg=no_reminders) == [COUNTY]
    assert nxt("red", 12, red_since=T0, cfg=no_reminders) == at(20)


def test_min_level_red_escalates_red_only() -> None:
    cfg = Escalation(min_level="red", steps=[EscalationStep(tier="county", after_min=3)])
    assert due("orange", 5, cfg=cfg) == []
    assert due("red", 5, red_since=T0, cfg=cfg) == [COUNTY, "reminder:1"]


def outbox_replay(ticks: list[float], *, level: str = "red") -> list[tuple[float, str]]:
    """What a caller that de-duplicates by idempotency key sends, tick by tick."""
    sent: dict[str, float] = {}
    for minutes in ticks:
        for reason in due(level, minutes, red_since=T0):
            sent.setdefault(reason, minutes)
    return [(m, r) for r, m in sent.items()]


def test_ticking_every_minute_sends_each_step_once_on_time() -> None:
    assert outbox_replay([m / 2 for m in range(62)]) == [
        (5, "reminder:1"), (10, COUNTY), (10, "reminder:2"), (15, "reminder:3"), (20, CITY),
        (20, "reminder:4"), (25, "reminder:5"), (30, PROVINCE), (30, "reminder:6"),
    ]


def test_restart_after_an_outage_skips_no_escalation_and_floods_no_reminders() -> None:
    # The service ran until 7 min, was down, and came back at 31 min.
    assert outbox_replay([0, 1, 5, 7, 31, 32]) == [
        (5, "reminder:1"), (31, COUNTY), (31, CITY), (31, PROVINCE), (31, "reminder:6"),
    ]


@pytest.mark.parametrize(("level", "minutes", "red_since", "expected"), [
    ("orange", 0, None, at(10)),
    ("orange", 10, None, at(20)),
    ("orange", 29.5, None, at(30)),
    ("orange", 30, None, None),
    ("yellow", 5, None, None),
    ("red", 0, T0, at(5)),
    ("red", 5, T0, at(10)),
    ("red", 7, T0, at(10)),
    ("red", 12, T0, at(15)),
    ("red", 45, T0, at(50)),
    ("red", 1, at(3), at(8)),  # red_since ahead of now (clock skew): first reminder M after it
])
def test_next_due(level: str, minutes: float, red_since: datetime | None, expected: datetime | None) -> None:
    assert nxt(level, minutes, red_since=red_since) == expected


def test_times_in_any_timezone_compare_as_instants() -> None:
    since_utc = T0.astimezone(UTC)
    assert due("orange", 10, escalation_since=since_utc) == [COUNTY]


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        due_steps(level="orange", escalation_since=T0.replace(tzinfo=None), red_since=None, acknowledged=False,
                  closed_or_cleared=False, cfg=ESC, now=at(10))


# -- texts ----------------------------------------------------------------------------------------


def warning(site_id: str, sensor_id: str, level: str, value: float) -> WarningEvent:
    sensor = CFG.sensor(site_id, sensor_id)
    assert sensor is not None
    ts = int(T0.timestamp() * 1000)
    return WarningEvent(
        episode="ep", site=site_id, subject=f"{site_id}/{sensor_id}",
        rule=sensor.thresholds[0].rule if sensor.thresholds else sensor.quantity, kind="escalated",
        level=level, previous="orange", ts=ts, emitted_at=ts, value=value, threshold=None, unit=sensor.unit,
        detail={"peak": level},
    )


def render(step: Step, site_id: str = "TD-001", sensor_id: str = "PZ-01", *, level: str = "red",
           value: float = 3.9, raised_at: datetime = T0, language: str = "zh-CN") -> str:
    return render_escalation(step, site=CFG.site(site_id), sensor=CFG.sensor(site_id, sensor_id),
                             episode_level=level, raised_at=raised_at, event=warning(site_id, sensor_id, level, value),
                             language=language, tz=CFG.settings.timezone)


COUNTY_STEP = Step("escalation", "county", 0, at(10), ("regulators:county",))
REMINDER_2 = Step("reminder", None, 2, at(10), ("officers", "operators"))


@pytest.mark.parametrize(("step", "language", "text", "n_segments"), [
    (COUNTY_STEP, "zh-CN",
     ("【hazwatch】叫应升级（县级）：夏河尾矿库浸润线埋深红色预警（11月23日14:05起，实测3.9m）"
      "已10分钟未获企业响应，请督促夏河矿业有限公司立即处置。"), 2),
    (REMINDER_2, "zh-CN",
     "【hazwatch】第2次提醒：夏河尾矿库浸润线埋深红色预警（11月23日14:05起，实测3.9m）仍未确认，请立即响应！", 1),
    (COUNTY_STEP, "en",
     ("[hazwatch] Escalated: Red warning, phreatic depth, Xiahe tailings dam, since 14:05, "
      "unanswered 10 min. Press the enterprise to act."), 1),
    (REMINDER_2, "en",
     ("[hazwatch] Reminder 2: Red warning, phreatic depth, Xiahe tailings dam, since 14:05 23 Nov, "
      "still not acknowledged. Respond now!"), 1),
])
def test_rendered_texts(step: Step, language: str, text: str, n_segments: int) -> None:
    body = render(step, language=language)
    assert body == text
    assert segments(body) == n_segments


def test_minutes_count_from_when_the_episode_was_raised() -> None:
    # Raised at yellow at 14:00, orange at 14:05: the county step (14:15) says 15 minutes since 14:00.
    body = render(COUNTY_STEP, level="orange", raised_at=T0 - timedelta(minutes=5))
    assert "橙色预警（11月23日14:00起，实测3.9m）已15分钟未获企业响应" in body
    assert segments(body) == 2


def test_city_and_province_name_their_tier() -> None:
    city = render(Step("escalation", "city", 0, at(20), ("regulators:city",)))
    province = render(Step("escalation", "province", 0, at(30), ("regulators:province",)))
    assert city.startswith("【hazwatch】叫应升级（市级）：") and "已20分钟" in city
    assert province.startswith("【hazwatch】叫应升级（省级）：") and "已30分钟" in province
    assert (segments(city), segments(province)) == (2, 2)


def _all_steps() -> list[Step]:
    steps = [Step("escalation", s.tier, 0, T0 + timedelta(minutes=s.after_min), (f"regulators:{s.tier}",))
             for s in ESC.steps]
    steps.append(Step("escalation", "province", 0, T0 + timedelta(hours=24), ("regulators:province",)))
    steps += [Step("reminder", None, k, T0 + timedelta(minutes=5 * k), ("officers",)) for k in (1, 12, 288)]
    return steps


CASES = [
    (site.id, sensor.id, value)
    for site in CFG.sites for sensor in site.sensors
    for value in ((sensor.range or (0.0, 100.0))[0] - 0.123, (sensor.range or (0.0, 100.0))[1] + 0.456)
]


@pytest.mark.parametrize(("site_id", "sensor_id", "value"), CASES)
@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize("level", ["orange", "red"])
def test_every_text_fits_two_ucs2_segments(site_id: str, sensor_id: str, value: float, language: str,
                                            level: str) -> None:
    colour = {"zh-CN": {"orange": "橙色预警", "red": "红色预警"}, "en": {"orange": "Orange warning", "red": "Red warning"}}
    for step in _all_steps():
        body = render(step, site_id, sensor_id, level=level, value=value, language=language)
        assert len(body.encode("utf-16-le")) // 2 <= 134, body
        assert segments(body) <= 2, body
        assert colour[language][level] in body
        assert body.startswith("【hazwatch】" if language == "zh-CN" else "[hazwatch] ")
        assert not any(u in body.lower() for u in ("http", "www.", "://")), body
        if language == "zh-CN":  # Chinese texts keep every essential at full length
            assert CFG.site(site_id).name in body
            assert (CFG.site(site_id).enterprise in body) is (step.kind == "escalation")


def test_render_refuses_a_non_warning_level() -> None:
    with pytest.raises(ValueError, match="warning level"):
        render(COUNTY_STEP, level="normal")
