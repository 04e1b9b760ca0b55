"""One site's device or data logger on MQTT, which keeps every reading until the broker has it.

A data logger in the field stores each reading until the broker acknowledges it (PUBACK) and,
after a lost link or a broker restart, sends again what was not acknowledged, oldest first.
paho-mqtt 2.2 does this for QoS 1 as long as its client object lives (measured against Mosquitto
2.0.11, docs/ARCHITECTURE.md §5): a message that was in flight when the link broke is sent again
with DUP set, whatever ``clean_session`` says, and one published while disconnected waits in the
client's queue; after the automatic reconnect both go out in publish order. :class:`Device` keeps
one client for its whole life, never limits that queue (``max_queued_messages_set(0)``),
reconnects after 1 s, doubling up to 10 s, and counts the acknowledgements itself from
``on_publish``: paho's ``MQTTMessageInfo.is_published()`` raises for a message published while
disconnected (rc ``MQTT_ERR_NO_CONN``), although paho delivers it later.

The device's last will sets ``hw/v1/{site}/status`` to ``offline`` (retained); it publishes
``online`` (retained) on every (re)connect. What is still unacknowledged when it is closed is
dropped, as when a logger is switched off.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from config.mqtt import MqttSettings, configure_client
from sensors.scenario import SensorsError

if TYPE_CHECKING:
    from sensors.simulator import PlannedMessage

__all__ = ["CONNECT_TIMEOUT_S", "Device", "PublishError", "status_topic"]

CONNECT_TIMEOUT_S = 10.0
"""How long to wait for the broker's first CONNACK, seconds."""
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 10
"""A device's reconnect back-off, doubling from the minimum, seconds."""


class PublishError(SensorsError):
    """The broker could not be reached, refused the connection or did not acknowledge."""


def status_topic(site: str) -> str:
    return f"hw/v1/{site}/status"


class Device:
    """The MQTT client of one site's device or gateway (QoS 1, unacknowledged messages kept)."""

    def __init__(self, site: str, mqtt_url: str | MqttSettings, *, client_id: str | None = None,
                 password: str | None = None) -> None:
        """``mqtt_url``: a URL, or the settings (TLS files, account) of ``mqtt`` in hazwatch.yaml.
        ``password``: the device's own account, its site id as user name (deploy/mosquitto/acl);
        without it the device logs in with the account the URL or the settings give."""
        self.site = site
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"hazwatch-sim-{site}-{uuid.uuid4().hex[:8]}")
        try:
            self._host, self._port = configure_client(
                self.client, mqtt_url, login=(site, password) if password is not None else None)
        except ValueError as exc:
            raise PublishError(str(exc)) from exc
        self.client.will_set(status_topic(site), b"offline", qos=1, retain=True)
        self.client.max_queued_messages_set(0)  # keep every unacknowledged reading
        self.client.reconnect_delay_set(min_delay=RECONNECT_MIN_S, max_delay=RECONNECT_MAX_S)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self._changed = threading.Condition()
        self._pending: dict[int, int] = {}  # mid -> readings, sent and not acknowledged yet
        self._early: set[int] = set()  # mids acknowledged before publish() returned them
        self.acknowledged = 0
        """Readings the broker has acknowledged."""
        self._connected = threading.Event()
        self._refused: list[str] = []

    def connect(self, timeout_s: float = CONNECT_TIMEOUT_S) -> Device:
        """Connect and start the network thread; raise :class:`PublishError` without a CONNACK."""
        try:
            self.client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise PublishError(f"cannot reach the MQTT broker at {self._host}:{self._port}: {exc}") from exc
        self.client.loop_start()
        if not self._connected.wait(timeout_s) or self._refused:
            self.client.loop_stop()
            why = self._refused[0] if self._refused else f"no CONNACK within {timeout_s} s"
            raise PublishError(f"MQTT broker {self._host}:{self._port} did not accept the device of "
                               f"{self.site}: {why}")
        return self

    def publish(self, msg: PlannedMessage) -> None:
        """Hand ``msg`` to the client: sent now, or after the next reconnect, until acknowledged."""
        if msg.qos < 1:
            raise ValueError("a device sends its readings at QoS 1: only acknowledged ones are known to arrive")
        info = self.client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # 65 535 messages unacknowledged: no message id left
            raise PublishError(f"{self.site}: too many unacknowledged messages to publish {msg.topic}")
        self._track(info.mid, msg.readings)

    @property
    def unacknowledged(self) -> int:
        """Messages handed to the client and not acknowledged by the broker yet."""
        with self._changed:
            return len(self._pending)

    def wait_acknowledged(self, timeout_s: float) -> bool:
        """Wait until the broker has acknowledged everything published; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def close(self) -> None:
        self.client.disconnect()  # first: it wakes the network thread, which loop_stop() joins
        self.client.loop_stop()

    # -- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _ud: object, _flags: object, reason: ReasonCode,
                    _props: object) -> None:
        if reason.is_failure:
            self._refused.append(str(reason))
        else:  # also after an automatic reconnect: the will may have fired meanwhile
            self._track(client.publish(status_topic(self.site), b"online", qos=1, retain=True).mid, 0)
        self._connected.set()

    def _on_publish(self, _client: mqtt.Client, _ud: object, mid: int, _rc: object, _props: object) -> None:
        with self._changed:  # paho holds its message lock here; never publish under ours
            readings = self._pending.pop(mid, None)
            if readings is None:
                self._early.add(mid)
            else:
                self.acknowledged += readings
            self._changed.notify_all()

    def _track(self, mid: int, readings: int) -> None:
        with self._changed:
            if mid in self._early:
                self._early.discard(mid)
                self.acknowledged += readings
                self._changed.notify_all()
            else:
                self._pending[mid] = readings
