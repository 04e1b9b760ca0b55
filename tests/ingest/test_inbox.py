"""Ingest's inbox holds a bounded number of messages: when it is full, the reader waits (MQTT is
left unread, nothing dropped), and the overload is visible in its metrics until it has eased."""

from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY

from ingest.inbox import Arrival, Inbox
from ingest.mqtt_client import Received


def arrival(n: int, first: int = 0) -> Arrival:
    return Arrival(1, 0, [Received(b"t", str(first + i).encode(), first + i, 1) for i in range(n)])


def gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


def test_take_returns_whole_arrivals_in_order_up_to_the_size_asked() -> None:
    inbox = Inbox(100)
    for k in range(4):
        inbox.put(arrival(3, 3 * k), stopping=lambda: False)
    first = inbox.take(7, timeout=0)
    assert [a.messages[0].mid for a in first] == [0, 3]  # a third arrival would make 9 > 7
    assert [a.messages[0].mid for a in inbox.take(1, timeout=0)] == [6]  # at least one arrival
    assert len(inbox) == 3
    assert inbox.take(100, timeout=0)[0].messages[-1].mid == 11
    assert inbox.take(100, timeout=0) == []


def test_a_round_gathers_what_arrives_soon_after_its_oldest_message() -> None:
    inbox = Inbox(100)
    now_ms = int(time.time() * 1000)
    inbox.put(arrival(1)._replace(received_ms=now_ms), stopping=lambda: False)
    taken: list[Arrival] = []
    taker = threading.Thread(target=lambda: taken.extend(inbox.take(2, timeout=0, gather_s=60)))
    taker.start()
    inbox.put(arrival(1, 1)._replace(received_ms=now_ms), stopping=lambda: False)  # ends the gathering: 2 messages
    taker.join(30)
    assert not taker.is_alive() and [a.messages[0].mid for a in taken] == [0, 1]
    # an oldest message older than the gathering time is taken at once, with what is there
    inbox.put(arrival(1, 2)._replace(received_ms=now_ms - 120_000), stopping=lambda: False)
    assert [a.messages[0].mid for a in inbox.take(100, timeout=0, gather_s=60)] == [2]


def test_a_full_inbox_holds_the_reader_back_and_says_so_until_half_empty() -> None:
    inbox = Inbox(10)
    inbox.put(arrival(10), stopping=lambda: False)
    seconds_before = gauge("hazwatch_ingest_overloaded_seconds_total") or 0.0
    put_done = threading.Event()
    reader = threading.Thread(target=lambda: (inbox.put(arrival(4, 10), stopping=lambda: False), put_done.set()))
    reader.start()
    try:
        assert not put_done.wait(1.0), "the reader went on although the inbox was full"
        assert inbox.full and gauge("hazwatch_ingest_overloaded") == 1
        assert len(inbox.take(3, timeout=0)[0].messages) == 10  # one whole arrival, although larger
        assert put_done.wait(10)
        assert len(inbox) == 4 and not inbox.full  # 4 <= 10 // 2: eased
        assert gauge("hazwatch_ingest_overloaded") == 0
        assert gauge("hazwatch_ingest_overloaded_seconds_total") > seconds_before
        assert [m.mid for a in inbox.take(100, timeout=0) for m in a.messages] == [10, 11, 12, 13]
    finally:
        reader.join(10)


def test_a_stopping_reader_is_not_held_back() -> None:
    inbox = Inbox(1)
    inbox.put(arrival(1), stopping=lambda: False)
    inbox.put(arrival(1, 1), stopping=lambda: True)  # returns at once
    assert len(inbox) == 2
