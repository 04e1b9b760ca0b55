"""Ingest's paho client: it reads messages in batches, acknowledges them in batches, and reads
everything the broker has already sent before it gives up a connection that failed.

paho-mqtt 2.2 handles one packet per pass of its network loop: a ``select``, then one ``recv`` for
the packet's first byte, one per byte of its length and one for the rest, then a ``MQTTMessage``,
a topic-filter match and a lock around ``on_message``. A PUBACK is one ``send`` to the broker plus
one to wake the loop. Measured with ``hazwatch bench ingest`` (single readings, docs/BENCHMARKS.md
§3), that made paho's thread more than half of ingest's CPU per reading. This client
- reads the socket 64 KiB at a time and hands paho's packet reader the bytes from that buffer;
- keeps reading packets until the socket has nothing more, instead of one packet per ``select``;
- hands the QoS 0/1 PUBLISH packets of a pass to ``on_batch`` as one list of
  :class:`Received` (topic, payload, mid, qos), decoded by paho's own ``decode_publish``;
- acknowledges a list of messages with one write (:meth:`ack_many`).

When the broker dies (SIGKILL, crash) the messages it wrote last are still in the socket,
readable, but the next write (a PUBACK, a PINGREQ) fails and plain paho closes the socket with
them unread: of 50 messages buffered at the reset, 12 to 20 reached ``on_message``. The broker
acknowledged such messages to the devices before it saved them (docs/ARCHITECTURE.md §5), so they
existed nowhere else. This client first reads every whole packet that is still buffered, then lets
paho handle the lost connection.

Paho pings every ``keepalive`` s and takes the broker for dead when no byte has come for
``keepalive`` s after a PINGREQ. While ingest's inbox is full, paho's thread waits to hand on a
batch and reads nothing, so after 30 s paho would close a healthy connection, and Mosquitto, hearing
nothing from it (no PUBACK, no PINGREQ) for 45 s, would too. Then the broker drops what arrives for
the disconnected session once its queue, which counts the messages in flight, is past
``max_queued_messages``, and sends every unacknowledged message again. :meth:`stay_alive`, called
while that thread waits, keeps the PUBACKs and PINGREQs going out and counts the pause as life.

It overrides methods private to paho (``_sock_recv``, ``_handle_publish``, ``_loop_rc_handle``)
and calls ``_packet_read``, ``_packet_queue`` and ``_send_pingreq``; pyproject.toml pins paho-mqtt
2.2.0 and tests/ingest/test_mqtt_client.py checks the behaviour on that version.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt import _packet

__all__ = ["BatchingClient", "Received"]

READ_CHUNK = 65536
FLUSH_EVERY = 1000
"""Packets read in one pass before they are handed on and pending writes (PUBACKs, PINGREQ) go
out: a pass under constant load would otherwise never end."""
_PUBACK = struct.Struct("!BBH")


class Received(NamedTuple):
    topic: bytes
    payload: bytes
    mid: int
    qos: int


class BatchingClient(mqtt.Client):
    """A ``paho.mqtt.client.Client`` for MQTT 3.1.1 subscribers with ``manual_ack=True`` that
    receive many small messages. Set :attr:`on_batch` instead of ``on_message``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_batch: Callable[[list[Received]], None] = lambda _batch: None
        self._received: list[Received] = []
        self._rsock: object = None
        self._rbuf = b""
        self._rpos = 0
        self._paused_ping = 0.0

    # -- reading ------------------------------------------------------------------------------
    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rsock is not self._sock:  # a new connection: nothing of the old one is kept
            self._rsock, self._rbuf, self._rpos = self._sock, b"", 0
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(READ_CHUNK)  # raises BlockingIOError when there is nothing
            if not data:
                return data
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = min(start + bufsize, len(self._rbuf))
        return self._rbuf[start:self._rpos]

    def _buffered(self) -> bool:
        return self._rsock is self._sock and self._rpos < len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        """Read packets until the socket and the buffer are empty (``max_packets`` is ignored, as
        paho 2.2 ignores it too)."""
        read = 0
        try:
            while self._sock is not None:
                rc = self._packet_read()
                if rc > 0:
                    return self._loop_rc_handle(rc)
                if rc == mqtt.MQTT_ERR_AGAIN and not self._buffered():
                    return mqtt.MQTT_ERR_SUCCESS
                read += 1
                if read % FLUSH_EVERY == 0:
                    self._flush()
                    if self.want_write():
                        self.loop_write()
            return mqtt.MQTT_ERR_NO_CONN
        finally:
            self._flush()

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        command = self._in_packet["command"]
        if (command & 0x06) == 0x04 or self._protocol == mqtt.MQTTv5:  # QoS 2 or MQTT 5: paho's way
            return super()._handle_publish()
        p = _packet.decode_publish(command, self._in_packet["packet"], self._protocol)
        self._received.append(Received(p.topic, p.payload, p.mid, p.qos))
        return mqtt.MQTT_ERR_SUCCESS

    def _flush(self) -> None:
        if self._received:
            batch, self._received = self._received, []
            self.on_batch(batch)

    # -- a failed connection ------------------------------------------------------------------
    def _loop_rc_handle(self, rc: mqtt.MQTTErrorCode) -> mqtt.MQTTErrorCode:
        if rc:
            self.drain()
            self._flush()
        return super()._loop_rc_handle(rc)

    def drain(self) -> int:
        """Handle every whole packet the socket still holds; return how many."""
        handled = 0
        while self._sock is not None:
            try:
                if self._packet_read() != mqtt.MQTT_ERR_SUCCESS:  # nothing left, or the error itself
                    break
            except Exception:  # noqa: BLE001 - a closed or broken socket: nothing more to read
                break
            handled += 1
        return handled

    # -- keepalive ---------------------------------------------------------------------------
    def stay_alive(self) -> None:
        """Called by paho's thread while it waits to hand on a batch (ingest's inbox is full) and
        reads nothing: write what is queued (the PUBACKs of what went to Kafka meanwhile) and a
        PINGREQ every half keepalive, so that the broker keeps the connection. Not reading is this
        client's choice, so the silence does not count against the broker either."""
        if self._sock is None:
            return
        now = time.monotonic()
        with self._msgtime_mutex:  # what paho's keepalive check reads
            self._last_bytes_received = now
        if self._keepalive and now - self._paused_ping >= self._keepalive / 2:
            self._paused_ping = now
            self._send_pingreq()
        if self.want_write():
            self.loop_write()

    # -- acknowledging ------------------------------------------------------------------------
    def ack_many(self, mids: Iterable[int]) -> None:
        """Acknowledge QoS 1 messages of the current connection: their PUBACKs in one write."""
        packet = b"".join([_PUBACK.pack(mqtt.PUBACK, 2, mid) for mid in mids])
        if packet and self._sock is not None:
            self._packet_queue(mqtt.PUBACK, packet, 0, 1)
