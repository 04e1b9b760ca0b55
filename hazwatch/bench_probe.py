"""Latency probes of ``hazwatch bench pipeline``: reading -> warning event, reading -> SMS request.

One device of one site publishes, over MQTT at QoS 1 like any device, a red reading stamped with
the wall clock, waits for the warning event with that reading's ``ts`` on ``hazwatch.warnings``
and for the first SMS request the fake Twilio accepts after it, then a normal reading that clears
the warning, and starts again after ``period_s``. The probe sensor needs no duration before a
level (the benchmark's configuration sets its ``min_duration_s`` to 0) and its SMS do not wait for
grouping (``group_wait_s`` 0); all-clear texts are not counted. Times are wall-clock times of this
process, so a sample is what an operator's screen or a resident's phone would see, give or take
the fake provider's own time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
from kafka import KafkaConsumer, TopicPartition

from config.topics import PARTITIONS, READINGS, WARNINGS
from formats.warning import WarningEvent
from hazwatch.kafka_admin import all_partitions
from rules.changelog import partition_of

__all__ = ["Probe", "Sample", "percentiles"]

CLEARED_WORDS = ("解除", "lifted")  # an all-clear text (alerts/render.py headline)
POLL_MS = 25  # how often the warnings topic and the fake Twilio are looked at while waiting


@dataclass
class Sample:
    at: float  # wall-clock time of the red publish
    ts: int = 0  # the red reading's ts
    warning_ms: float | None = None
    sms_ms: float | None = None
    ingested_ms: float | None = None  # the reading's Kafka record timestamp: when ingest produced it
    decided_ms: float | None = None  # the warning event's ``emitted_at``: when the rules worker decided
    produced_ms: float | None = None  # its Kafka record's timestamp: when the rules worker produced it


def percentiles(values: list[float]) -> dict[str, Any]:
    """n, p50, p99 and max of ``values`` (nearest rank), rounded to a millisecond."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    s = sorted(values)

    def rank(q: float) -> float:
        return round(s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))])

    return {"n": len(s), "p50": rank(0.5), "p99": rank(0.99), "max": round(s[-1])}


class _Ingested(threading.Thread):
    """The Kafka record timestamps of the probe's red readings (when ingest produced them), read from
    their site's readings partition by a consumer of its own: sharing the warnings' consumer added
    some 30 ms of the probe's own to every latency it measured."""

    def __init__(self, bootstrap: str, site: str, stopping: threading.Event) -> None:
        super().__init__(name="bench-probe-readings", daemon=True)
        self.key, self.stopping = site.encode(), stopping
        self.waiting = b""  # the ts of the red in flight, as it appears in the record's JSON
        self.seen: dict[int, int] = {}
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-probe-readings",
                                      fetch_max_wait_ms=100)
        tp = TopicPartition(READINGS, partition_of(site, PARTITIONS[READINGS]))
        self.consumer.assign([tp])
        self.consumer.seek_to_end(tp)
        self.consumer.position(tp)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                for records in self.consumer.poll(timeout_ms=200).values():
                    for rec in records:
                        waiting = self.waiting
                        if rec.key == self.key and waiting and waiting in rec.value:
                            self.seen.setdefault(int(waiting), rec.timestamp)
        finally:
            self.consumer.close()


class Probe(threading.Thread):
    """Red, wait, normal, wait, pause; until :meth:`stop`. ``samples`` grows as it goes."""

    def __init__(self, *, bootstrap: str, mqtt_port: int, login: tuple[str, str], twilio_url: str,
                 site: str, sensor: str, red: float, normal: float, period_s: float = 1.0,
                 timeout_s: float = 30.0) -> None:
        super().__init__(name="bench-probe", daemon=True)
        self.topic = f"hw/v1/{site}/{sensor}/reading"
        self.subject = f"{site}/{sensor}"
        self.red, self.normal = red, normal
        self.period_s, self.timeout_s = period_s, timeout_s
        self.samples: list[Sample] = []
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._running = threading.Event()  # cleared by pause(): no new cycle starts
        self._running.set()
        self._cycling = threading.Lock()  # held during a cycle
        self._twilio = httpx.Client(base_url=twilio_url, timeout=10)
        self._sms_next = self._twilio.get("/_fake/messages", params={"since": 1 << 30}).json()["next"]
        # a short fetch wait: Tansu answers a fetch only when the wait runs out, and the default
        # 500 ms added about 250 ms of the probe's own to every latency measured there
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="bench-probe", fetch_max_wait_ms=20)
        parts = all_partitions(self._consumer, [WARNINGS])
        self._consumer.assign(parts)
        self._consumer.seek_to_end(*parts)
        for tp in parts:
            self._consumer.position(tp)
        # reading ts -> when its warning event arrived here, its emitted_at, its record's timestamp
        self._seen: dict[int, tuple[float, int, int]] = {}
        self._ingested = _Ingested(bootstrap, site, self._stopping)
        self._ingested.start()
        self._mqtt = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-probe-{site}")
        self._mqtt.username_pw_set(*login)
        self._mqtt.connect("127.0.0.1", mqtt_port)
        self._mqtt.loop_start()

    def stop(self) -> None:
        self._stopping.set()
        self._running.set()
        self.join(self.timeout_s * 2 + 5)
        self._mqtt.disconnect()
        self._mqtt.loop_stop()
        self._consumer.close()
        self._ingested.join(5)
        self._twilio.close()

    def pause(self) -> None:
        """Finish the current cycle and start no other until :meth:`resume` (the benchmark waits
        for the readings topic to stop growing)."""
        self._running.clear()
        with self._cycling:
            pass

    def resume(self) -> None:
        self._running.set()

    def between(self, t0: float, t1: float) -> list[Sample]:
        out = [s for s in self.samples if t0 <= s.at < t1]
        for s in out:
            if s.ingested_ms is None and (t := self._ingested.seen.get(s.ts)) is not None:
                s.ingested_ms = t - s.at * 1000
        return out

    # -- the probe loop ------------------------------------------------------------------------
    def _publish(self, value: float) -> tuple[int, float]:
        ts = int(time.time() * 1000)
        at = time.time()
        self._mqtt.publish(self.topic, orjson.dumps({"ts": ts, "v": value}), qos=1).wait_for_publish(self.timeout_s)
        return ts, at

    def _poll(self) -> None:
        # a fetch returns as soon as a record arrives (fetch.min.bytes 1), so a long poll costs no
        # latency; a short one would keep the broker and this process busy
        for records in self._consumer.poll(timeout_ms=POLL_MS).values():
            for rec in records:
                event = WarningEvent.from_json(rec.value)
                if event.subject == self.subject:
                    self._seen.setdefault(int(event.ts), (time.time(), event.emitted_at, rec.timestamp))

    def _first_sms(self) -> float | None:
        got = self._twilio.get("/_fake/messages", params={"since": self._sms_next}).json()
        now = time.time()
        self._sms_next = got["next"]
        texts = [m for m in got["messages"] if not any(w in m["body"] for w in CLEARED_WORDS)]
        return now if texts else None

    def _cycle(self) -> None:
        self._ingested.waiting = b""
        ts, at = self._publish(self.red)
        self._ingested.waiting = str(ts).encode()
        sample = Sample(at=at, ts=ts)
        self.samples.append(sample)
        deadline = at + self.timeout_s
        while (sample.warning_ms is None or sample.sms_ms is None) and time.time() < deadline:
            self._poll()
            if sample.warning_ms is None and ts in self._seen:
                seen, emitted_at, produced = self._seen[ts]
                sample.warning_ms = (seen - at) * 1000
                sample.decided_ms, sample.produced_ms = emitted_at - at * 1000, produced - at * 1000
            if sample.sms_ms is None and (got := self._first_sms()) is not None:
                sample.sms_ms = (got - at) * 1000
        clear_ts, clear_at = self._publish(self.normal)
        while clear_ts not in self._seen and time.time() < clear_at + self.timeout_s:
            self._poll()
        self._stopping.wait(self.period_s)
        self._first_sms()  # the all-clear texts are not the next red's

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                if not self._running.wait(0.1):
                    continue
                with self._cycling:
                    self._cycle()
        except BaseException as exc:  # noqa: BLE001 - reported by the benchmark
            self.error = exc
