"""Ingest's MQTT client keeps what a dying broker had already sent it (paho-mqtt 2.2.0)."""

from __future__ import annotations

import socket
import struct
import threading

import paho.mqtt.client as mqtt

from ingest.mqtt_client import DrainingClient

N = 50


def publish_packet(mid: int, payload: bytes) -> bytes:
    """A QoS 1 PUBLISH as a broker sends it."""
    topic = b"hw/v1/CH-001/GT-101/reading"
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid) + payload
    return bytes([0x32, len(body)]) + body


def test_messages_buffered_when_the_broker_dies_all_reach_on_message() -> None:
    """A broker writes N messages and dies with the client's PUBACKs unread (so the kernel resets the
    connection, as after a SIGKILL). The client acknowledges each message as it gets it, so a write
    fails after the first ones; plain paho 2.2 then closes the socket with the rest unread
    (12 to 20 of 50 measured). All N must reach on_message."""
    server = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []
    connected, lost = threading.Event(), threading.Event()
    client = DrainingClient(mqtt.CallbackAPIVersion.VERSION2, client_id="ingest-test", clean_session=False,
                            manual_ack=True)
    client.on_connect = lambda *_: connected.set()
    client.on_disconnect = lambda *_: lost.set()
    client.on_message = lambda c, _ud, m: (got.append(m.payload), c.ack(m.mid, 1))
    client.connect_async("127.0.0.1", server.getsockname()[1])
    client.loop_start()
    try:
        conn, _ = server.accept()
        conn.recv(1024)  # CONNECT
        conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, session not present
        assert connected.wait(10)
        conn.sendall(b"".join(publish_packet(i + 1, str(i).encode()) for i in range(N)))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # reset, as the kernel does for a killed broker
        assert lost.wait(10), "the client never noticed the lost connection"
        assert got == [str(i).encode() for i in range(N)]
    finally:
        client.loop_stop()
        server.close()
