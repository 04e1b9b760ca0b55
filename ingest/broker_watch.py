"""What the MQTT broker says about itself that ingest must pass on: the messages it dropped.

Mosquitto drops a message for a session whose queue is full (``max_queued_messages``; for a
disconnected client the count includes the messages that were in flight to it) and says so in two
places only: its own log ("Outgoing messages are being dropped for client ...", once per episode)
and ``$SYS/broker/publish/messages/dropped``, a retained count since it started, published every
``sys_interval`` seconds when it changed. The device had its PUBACK: such a reading is lost.

:class:`BrokerWatch` is a second connection of ingest's account, with a clean session (a QoS 0
subscription in ingest's persistent session would itself be counted as dropped while ingest is
away), subscribed to that count and to ``$SYS/broker/store/messages/count`` (the messages the broker
holds, ingest's backlog among them). It exports both as gauges, logs an ERROR each time the count
grows (and once at the start when the broker has dropped messages before), and its :meth:`check`
makes ingest's /healthz ``degraded`` for :data:`HOLD_S` after. docs/OPERATIONS.md has an alert rule
on the gauge.
"""

from __future__ import annotations

import logging
import threading
import time

import paho.mqtt.client as mqtt
from prometheus_client import Gauge

from config.mqtt import MqttSettings, configure_client

__all__ = ["DROPPED_TOPIC", "HOLD_S", "STORED_TOPIC", "BrokerWatch"]

log = logging.getLogger("hazwatch.ingest")

DROPPED_TOPIC = "$SYS/broker/publish/messages/dropped"
STORED_TOPIC = "$SYS/broker/store/messages/count"
HOLD_S = 600.0
"""How long /healthz says ``degraded`` after the broker dropped messages."""

BROKER_DROPPED = Gauge("hazwatch_mqtt_broker_dropped_messages",
                       "Messages the MQTT broker dropped since it started (its $SYS count): each one lost")
BROKER_STORED = Gauge("hazwatch_mqtt_broker_stored_messages",
                      "Messages the MQTT broker holds (its $SYS count): queued and in-flight ones among them")


class BrokerWatch:
    def __init__(self, settings: MqttSettings, *, client_id: str, hold_s: float = HOLD_S) -> None:
        self.settings = settings
        self.client_id = client_id
        self.hold_s = hold_s
        self.dropped: int | None = None
        """The broker's count, once it said it."""
        self.stored: int | None = None
        self.drops_seen = 0
        """Drops this watch has reported (a broker's count after its restart is all new)."""
        self._last_drop: float | None = None
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None

    def start(self) -> None:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=True)
        client.on_connect = lambda c, *_: c.subscribe([(DROPPED_TOPIC, 0), (STORED_TOPIC, 0)])
        client.on_message = lambda _c, _u, msg: self.observe(msg.topic, msg.payload)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        host, port = configure_client(client, self.settings)
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()

    def observe(self, topic: str, payload: bytes) -> None:
        try:
            count = int(payload)
        except ValueError:
            return
        if topic == STORED_TOPIC:
            self.stored = count
            BROKER_STORED.set(count)
            return
        if topic != DROPPED_TOPIC:
            return
        with self._lock:
            before, self.dropped = self.dropped, count
            BROKER_DROPPED.set(count)
            # a lower count: the broker restarted, and all it counts since is new
            new = count if before is None or count < before else count - before
            if new <= 0:
                return
            self.drops_seen += new
            self._last_drop = time.monotonic()
        if before is None:
            log.error("the MQTT broker has dropped %d message(s) since it started: a session's queue was full "
                      "(max_queued_messages); readings among them are lost", count)
        else:
            log.error("the MQTT broker dropped %d more message(s) (%d since it started): a session's queue was "
                      "full (max_queued_messages); readings among them are lost", new, count)

    def check(self) -> str | None:
        """None, or why the broker's drops make ingest degraded."""
        with self._lock:
            if self._last_drop is None or time.monotonic() - self._last_drop > self.hold_s:
                return None
            ago = time.monotonic() - self._last_drop
            return (f"the MQTT broker dropped messages {ago:.0f} s ago ({self.dropped:,} since it started): "
                    "a session's queue was full (max_queued_messages)")
