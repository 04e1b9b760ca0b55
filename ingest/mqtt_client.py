"""Ingest's paho client: it reads everything the broker has already sent before it gives up a
connection that failed.

paho-mqtt 2.2 reads one packet per network-loop pass and writes afterwards. When the broker dies
(SIGKILL, crash) the messages it wrote last are still in ingest's socket, readable, but the next
write (a PUBACK, a PINGREQ) fails and paho closes the socket with them unread: of 50 messages
buffered at the reset, 12 to 20 reached ``on_message``. The broker acknowledged such messages to the
devices before it saved them (docs/ARCHITECTURE.md §5), so they existed nowhere else. This client
first reads every whole packet that is still buffered, delivering each to ``on_message``, then lets
paho handle the lost connection.

It overrides ``_loop_rc_handle`` and calls ``_packet_read``, private to paho; pyproject.toml pins
paho-mqtt 2.2.0 and tests/ingest/test_mqtt_client.py checks the behaviour on that version.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

__all__ = ["DrainingClient"]


class DrainingClient(mqtt.Client):
    """A ``paho.mqtt.client.Client`` that drains its socket before closing a failed connection."""

    def _loop_rc_handle(self, rc: mqtt.MQTTErrorCode) -> mqtt.MQTTErrorCode:
        if rc:
            self.drain()
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
