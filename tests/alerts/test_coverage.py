"""Public warning coverage: the pure rule as a table, and over hand-built store rows (both backends)."""

from __future__ import annotations

import datetime as dt

import pytest

from alerts.coverage import CapRow, SmsRow, cap_state, coverage, follow_up, zone_coverage
from alerts.store import Store
from config.notify import Subscriber
from tests.alerts.db import backend_url_fixture, store_fixture  # noqa: F401  (pytest fixtures)
from tests.alerts.indicator_rows import ENT_A, Z_A_PEOPLE, Z_B_PEOPLE, episode, note, small_config

T0 = dt.datetime(2026, 7, 1, 0, 0, tzinfo=dt.UTC)
SUBS = [Subscriber(name=n, phone=p) for n, p in Z_A_PEOPLE]
P1, P2, P3 = (p for _, p in Z_A_PEOPLE)


@pytest.mark.parametrize(("rows", "delivered", "outcomes"), [
    ([], 0, {P1: "not_sent", P2: "not_sent", P3: "not_sent"}),
    ([SmsRow(P1, "sms", "sent", "delivered"), SmsRow(P2, "sms", "sent", "read"),
      SmsRow(P3, "sms", "sent", "delivered")], 3, {}),
    ([SmsRow(P1, "sms", "sent", "delivered"), SmsRow(P2, "sms", "sent", None),
      SmsRow(P3, "sms", "sent", "undelivered", "30003")],
     1, {P2: "awaiting_receipt", P3: "failed"}),
    # the best of a person's rows counts: failed on Twilio, delivered on the second channel
    ([SmsRow(P1, "sms", "failed", None), SmsRow(P1, "sms-aliyun", "sent", "delivered"),
      SmsRow(P2, "sms", "pending"), SmsRow(P3, "sms", "suppressed", None, "silenced by silence 4")],
     1, {P2: "pending", P3: "suppressed"}),
    # an SMS to somebody outside the zone does not count
    ([SmsRow("+8613900000000", "sms", "sent", "delivered"), SmsRow(P1, "sms", "unknown")],
     0, {P1: "pending", P2: "not_sent", P3: "not_sent"}),
])
def test_zone_coverage_table(rows: list[SmsRow], delivered: int, outcomes: dict[str, str]) -> None:
    got = zone_coverage(SUBS, rows, [], target=0.9)
    assert got["subscribers"] == 3 and got["delivered"] == delivered
    assert got["share"] == round(delivered / 3, 4)
    assert got["met"] is (delivered == 3)
    assert {p["phone"]: p["outcome"] for p in got["not_reached"]} == outcomes


def test_target_is_inclusive_and_an_empty_zone_meets_nothing() -> None:
    rows = [SmsRow(P1, "sms", "sent", "delivered"), SmsRow(P2, "sms", "sent", "delivered")]
    assert zone_coverage(SUBS, rows, [], target=2 / 3)["met"] is True
    assert zone_coverage(SUBS, rows, [], target=0.9)["met"] is False
    empty = zone_coverage([], rows, [], target=0.9)
    assert (empty["share"], empty["met"], empty["not_reached"]) == (None, False, [])


def test_not_reached_says_why() -> None:
    got = zone_coverage(SUBS[:1], [SmsRow(P1, "sms", "failed", None, "21211 invalid number")], [], 0.9)
    assert got["not_reached"] == [{"name": "张三", "phone": P1, "language": "zh-CN", "outcome": "failed",
                                   "channel": "sms", "reason": "21211 invalid number"}]


@pytest.mark.parametrize(("rows", "state", "identifier"), [
    ([], "none", None),
    ([CapRow("sent", "ID1")], "sent", "ID1"),
    ([CapRow("suppressed", None, "covered by CAP ID0")], "covered", "ID0"),
    ([CapRow("pending")], "pending", None),
    ([CapRow("unknown")], "pending", None),
    ([CapRow("sending")], "pending", None),
    ([CapRow("failed")], "failed", None),
    ([CapRow("suppressed", None, "silenced by silence 2")], "suppressed", None),
    ([CapRow("failed"), CapRow("sent", "ID2")], "sent", "ID2"),
])
def test_cap_state_table(rows: list[CapRow], state: str, identifier: str | None) -> None:
    assert cap_state(rows) == (state, identifier)
    assert zone_coverage([], [], rows, 0.9)["loudspeakers"] == {
        "state": state, "identifier": identifier, "sounded": state in ("sent", "covered")}


@pytest.fixture
def dataset(store: Store) -> Store:
    at = T0 + dt.timedelta(hours=1)
    eps = [
        episode("e1", "CH-A", "red", at),
        episode("e2", "CH-A2", "red", at + dt.timedelta(minutes=5), false_alarm=True),
        episode("e3", "CH-A", "orange", at),  # not red: no coverage
        episode("e4", "TD-B", "red", at, enterprise="乙矿业"),
        episode("e5", "CH-A", "red", T0 - dt.timedelta(seconds=1)),  # before the window
    ]
    p1, p2, p3 = (p for _, p in Z_A_PEOPLE)
    (_, p4), = Z_B_PEOPLE
    notes = [
        # e1: Z-A 2 of 3 delivered (p3 failed), Z-B awaiting its receipt; CAP sent to Z-A, failed to Z-B
        note("e1", "CH-A", p1, delivery="delivered", provider_id="SM1", created=at),
        note("e1", "CH-A", p2, kind="escalated", delivery="delivered", provider_id="SM2", created=at),
        note("e1", "CH-A", p3, status="failed", error="21211 invalid number", created=at),
        note("e1", "CH-A", p3, level="orange", delivery="delivered", created=at),  # orange: does not count
        note("e1", "CH-A", p4, provider_id="SM4", created=at),
        note("e1", "CH-A", "Z-A", channel="cap", kind="cap-alert", provider_id="CAP1", created=at),
        note("e1", "CH-A", "Z-B", channel="cap", kind="cap-alert", status="failed", created=at),
        note("e1", "CH-A", "Z-A", channel="cap", kind="cap-allclear", provider_id="CAP9", created=at),
        # e2: Z-A all delivered, its broadcast covered by e1's
        *[note("e2", "CH-A2", p, delivery="delivered", created=at) for p in (p1, p2, p3)],
        note("e2", "CH-A2", "Z-A", channel="cap", kind="cap-alert", status="suppressed",
             reason="covered by CAP CAP1", created=at),
        note("e5", "CH-A", p1, delivery="delivered", created=at),
    ]
    with store.session.begin() as s:
        s.add_all(eps)
        s.flush()
        s.add_all(notes)
    return store


def test_coverage_per_episode_and_zone(dataset: Store) -> None:
    data = coverage(dataset, small_config(), T0, T0 + dt.timedelta(days=1))
    assert data["target"] == 0.9
    assert [e["episode"] for e in data["episodes"]] == ["e1", "e4", "e2"]  # by time raised, then id
    e1 = next(e for e in data["episodes"] if e["episode"] == "e1")
    za, zb = e1["zones"]
    assert (za["zone"], za["subscribers"], za["delivered"], za["share"], za["met"]) == ("Z-A", 3, 2, 0.6667, False)
    assert za["loudspeakers"] == {"state": "sent", "identifier": "CAP1", "sounded": True}
    assert [(p["name"], p["outcome"], p["reason"]) for p in za["not_reached"]] == [
        ("王五", "failed", "21211 invalid number")]
    assert (zb["zone"], zb["delivered"], zb["share"]) == ("Z-B", 0, 0.0)
    assert zb["not_reached"][0]["outcome"] == "awaiting_receipt"
    assert zb["loudspeakers"]["state"] == "failed" and zb["loudspeakers"]["sounded"] is False
    e2 = next(e for e in data["episodes"] if e["episode"] == "e2")
    assert e2["false_alarm"] is True
    assert [(z["zone"], z["share"], z["met"], z["loudspeakers"]["state"]) for z in e2["zones"]] == [
        ("Z-A", 1.0, True, "covered")]
    e4 = next(e for e in data["episodes"] if e["episode"] == "e4")
    assert [(z["zone"], z["share"], z["met"], z["loudspeakers"]["state"]) for z in e4["zones"]] == [
        ("Z-C", None, False, "none")]
    by_zone = {z["zone"]: z for z in data["zones"]}
    assert by_zone["Z-A"] == {"zone": "Z-A", "zone_name": "Z-A区", "episodes": 2, "subscribers": 6,
                                   "delivered": 5, "met": 1, "sounded": 2, "share": 0.8333}
    assert (by_zone["Z-C"]["subscribers"], by_zone["Z-C"]["share"]) == (0, None)
    assert [(p["episode"], p["zone"], p["name"]) for p in follow_up(data)] == [
        ("e1", "Z-A", "王五"), ("e1", "Z-B", "赵六")]


def test_coverage_scoped_to_sites_with_a_target_and_in_english(dataset: Store) -> None:
    data = coverage(dataset, small_config(coverage={"target": 0.6}), T0, T0 + dt.timedelta(days=1),
                    sites={"CH-A"}, language="en")
    assert [e["episode"] for e in data["episodes"]] == ["e1"]
    assert data["episodes"][0]["site_name"] == "CH-A site" and data["episodes"][0]["enterprise"] == ENT_A
    assert [(z["zone_name"], z["met"]) for z in data["episodes"][0]["zones"]] == [
        ("zone Z-A", True), ("zone Z-B", False)]
    assert coverage(dataset, small_config(), T0, T0 + dt.timedelta(days=1), target=0.5)["target"] == 0.5


def test_a_site_no_longer_configured_keeps_the_zones_it_broadcast_to(store: Store) -> None:
    at = T0 + dt.timedelta(hours=2)
    with store.session.begin() as s:
        s.add(episode("gone", "OLD-1", "red", at))
        s.flush()
        s.add(note("gone", "OLD-1", "Z-B", channel="cap", kind="cap-alert", provider_id="CAPX", created=at))
    (e,) = coverage(store, small_config(), T0, T0 + dt.timedelta(days=1))["episodes"]
    assert e["site_name"] == "OLD-1"
    assert [(z["zone"], z["loudspeakers"]["state"]) for z in e["zones"]] == [("Z-B", "sent")]


def test_bad_window(store: Store) -> None:
    with pytest.raises(ValueError, match="must be after"):
        coverage(store, small_config(), T0, T0)
    with pytest.raises(ValueError, match="timezone"):
        coverage(store, small_config(), dt.datetime(2026, 7, 1), T0)
