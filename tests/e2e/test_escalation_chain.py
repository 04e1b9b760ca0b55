"""叫应 on real brokers with an injected clock: exact escalation timings, acknowledgement stops
the chain, red reminders, and the timers survive a restart of the alerts service."""

from __future__ import annotations

import pytest

from alerts.episodes import EpisodeService
from tests.e2e.alerts_harness import (  # noqa: F401 - harness_factory is a fixture
    CITY_TD,
    COUNTY_TD,
    OFFICER_TD,
    OPERATORS,
    PROVINCE_TD,
    Harness,
    harness_factory,
)
from tests.e2e.conftest import wait_until


@pytest.fixture
def harness(harness_factory) -> Harness:  # noqa: F811
    return harness_factory()


pytestmark = pytest.mark.e2e


def test_escalation_chain_exact_timings_and_ack_stops_it(harness: Harness) -> None:
    h = harness
    episode = h.send("raised", "orange", "normal", 0)
    wait_until(lambda: h.to(OFFICER_TD) and all(h.to(p) for p in OPERATORS), 30, "the orange SMS")
    assert h.to(COUNTY_TD) == []

    h.clock.set(9 + 59 / 60)  # 9:59 after the warning: not yet
    h.service.intake.tick()
    assert h.planned(COUNTY_TD) == 0

    h.clock.set(10)  # 10:00: the county regulator hears that the enterprise has not answered
    wait_until(lambda: h.to(COUNTY_TD), 30, "the county escalation at 10:00")
    assert "叫应" in h.to(COUNTY_TD)[0] or "未" in h.to(COUNTY_TD)[0]
    assert h.to(CITY_TD) == []

    h.clock.set(20)  # 20:00: the city
    wait_until(lambda: h.to(CITY_TD), 30, "the city escalation at 20:00")
    assert len(h.to(COUNTY_TD)) == 1, "the county is not told twice"

    EpisodeService(h.service.store).acknowledge(episode, by="安全员赵敏", now=h.clock())
    h.clock.set(45)  # long past the province step: acknowledgement stopped the chain
    assert h.service.intake.tick() == 0
    assert h.planned(PROVINCE_TD) == 0
    assert h.to(PROVINCE_TD) == []


def test_red_reminders_every_five_minutes_until_acknowledged(harness: Harness) -> None:
    h = harness
    episode = h.send("raised", "red", "normal", 0)
    wait_until(lambda: h.to(OFFICER_TD), 30, "the red SMS")
    assert len(h.to(OFFICER_TD)) == 1
    h.clock.set(4.9)
    h.service.intake.tick()
    assert h.planned(OFFICER_TD) == 1
    h.clock.set(5)
    wait_until(lambda: len(h.to(OFFICER_TD)) == 2, 30, "reminder 1 at 5:00")
    h.clock.set(10)
    wait_until(lambda: len(h.to(OFFICER_TD)) == 3, 30, "reminder 2 at 10:00")
    wait_until(lambda: all(len(h.to(p)) == 3 for p in OPERATORS), 30, "operators reminded too")
    EpisodeService(h.service.store).acknowledge(episode, by="安全员赵敏", now=h.clock())
    h.clock.set(30)
    assert h.service.intake.tick() == 0, "no step is due after the acknowledgement"
    assert len(h.to(OFFICER_TD)) == 3


def test_timers_survive_a_restart(harness: Harness) -> None:
    h = harness
    h.send("raised", "orange", "normal", 0)
    wait_until(lambda: h.to(OFFICER_TD), 30, "the orange SMS")
    h.clock.set(10)
    wait_until(lambda: h.to(COUNTY_TD), 30, "county at 10:00")
    h.stop()  # the service goes away; the clock moves on while it is down
    h.clock.set(25)
    h.start(group="alerts-test")
    wait_until(lambda: h.to(CITY_TD), 30, "the city step, due while the service was down")
    assert len(h.to(COUNTY_TD)) == 1, "the county step is not repeated after the restart"
    assert len(h.to(OFFICER_TD)) == 1, "the warning itself is not repeated after the restart"
