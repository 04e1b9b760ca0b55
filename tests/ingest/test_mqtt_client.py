"""Ingest's MQTT client (paho-mqtt 2.2.0) reads messages in batches, acknowledges them in one write,
and keeps what a dying broker had already sent it."""

from __future__ import annotations

import socket
import struct
import threading
import time

import paho.mqtt.client as mqtt

from ingest.mqtt_client import BatchingClient, Received

N = 50


def publish_packet(mid: int, payload: bytes, topic: bytes = b"hw/v1/CH-001/GT-101/reading") -> bytes:
    """A QoS 1 PUBLISH as a broker sends it."""
    body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", mid) + payload
    length = len(body)
    encoded = bytearray()
    while True:  # MQTT's variable-length remaining length
        byte, length = length % 128, length // 128
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes([0x32]) + bytes(encoded) + body


class FakeBroker:
    """One accepted connection of a client, spoken to by hand: CONNECT in, CONNACK out."""

    def __init__(self, client: BatchingClient, keepalive: int = 60) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.client = client
        self.got: list[Received] = []
        self.connected, self.lost, self.received = threading.Event(), threading.Event(), threading.Condition()
        client.on_connect = lambda *_: self.connected.set()
        client.on_disconnect = lambda *_: self.lost.set()
        client.on_batch = self._on_batch
        client.connect_async("127.0.0.1", self.server.getsockname()[1], keepalive=keepalive)
        client.loop_start()
        self.conn, _ = self.server.accept()
        self.conn.recv(1024)  # CONNECT
        self.conn.sendall(b"\x20\x02\x00\x00")  # CONNACK, session not present
        assert self.connected.wait(10)

    def _on_batch(self, batch: list[Received]) -> None:
        with self.received:
            self.got += batch
            self.received.notify_all()

    def wait_for(self, n: int) -> list[Received]:
        with self.received:
            assert self.received.wait_for(lambda: len(self.got) >= n, timeout=30), f"{len(self.got)} of {n}"
            return list(self.got)

    def close(self) -> None:
        self.client.loop_stop()
        self.conn.close()
        self.server.close()


def new_client() -> BatchingClient:
    return BatchingClient(mqtt.CallbackAPIVersion.VERSION2, client_id="ingest-test", clean_session=False,
                          manual_ack=True)


def test_every_message_arrives_whole_and_in_order_however_the_stream_is_cut() -> None:
    """Packets of every size, written in pieces that cut packets anywhere (the first byte, the
    length bytes, the payload), arrive whole and in order, in batches."""
    broker = FakeBroker(new_client())
    try:
        payloads = [bytes([65 + n % 26]) * size for n, size in enumerate([0, 1, 100, 127, 128, 5000, 70000, 3] * 40)]
        stream = b"".join(publish_packet(n % 65535 + 1, p) for n, p in enumerate(payloads))
        for start in range(0, len(stream), 777):
            broker.conn.sendall(stream[start:start + 777])
        got = broker.wait_for(len(payloads))
        assert [m.payload for m in got] == payloads
        assert [m.mid for m in got] == [n % 65535 + 1 for n in range(len(payloads))]
        assert {(m.topic, m.qos) for m in got} == {(b"hw/v1/CH-001/GT-101/reading", 1)}
    finally:
        broker.close()


def test_ack_many_writes_one_puback_per_message() -> None:
    broker = FakeBroker(new_client())
    try:
        broker.conn.sendall(b"".join(publish_packet(mid, b"x") for mid in range(1, 301)))
        broker.client.ack_many(m.mid for m in broker.wait_for(300))
        expected = b"".join(struct.pack("!BBH", 0x40, 2, mid) for mid in range(1, 301))
        acks = b""
        broker.conn.settimeout(30)
        while len(acks) < len(expected):
            acks += broker.conn.recv(65536)
        assert acks == expected
    finally:
        broker.close()


def test_messages_buffered_when_the_broker_dies_all_reach_on_message() -> None:
    """A broker writes N messages and dies with the client's PUBACKs unread (so the kernel resets the
    connection, as after a SIGKILL). The client acknowledges each message as it gets it, so a write
    fails after the first ones; plain paho 2.2 then closes the socket with the rest unread
    (12 to 20 of 50 measured). All N must reach on_message."""
    broker = FakeBroker(client := new_client())
    # acknowledge each batch as it comes, so that a write fails while messages are still unread
    client.on_batch = lambda batch: (broker._on_batch(batch), client.ack_many(m.mid for m in batch))
    try:
        broker.conn.sendall(b"".join(publish_packet(i + 1, str(i).encode()) for i in range(N)))
        broker.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        broker.conn.close()  # reset, as the kernel does for a killed broker
        assert broker.lost.wait(10), "the client never noticed the lost connection"
        assert [m.payload for m in broker.got] == [str(i).encode() for i in range(N)]
    finally:
        broker.close()


PINGREQ = b"\xc0\x00"


def _read_for(conn: socket.socket, seconds: float) -> bytes:
    """Everything the client writes within ``seconds``."""
    got, end = b"", time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        conn.settimeout(left)
        try:
            data = conn.recv(65536)
        except TimeoutError:
            break
        if not data:
            break
        got += data
    return got


def test_a_broker_that_keeps_sending_keeps_the_connection_however_late_its_pingresp() -> None:
    """A broker with a backlog for the client answers its PINGREQ only after the backlog: for
    several keepalive periods it sends messages and no PINGRESP. The client stays (paho 2.2 pings
    again while bytes come), and takes a broker that then goes silent for dead."""
    broker = FakeBroker(new_client(), keepalive=1)
    try:
        written = b""
        for i in range(40):  # 4 s of messages, 4 keepalive periods, no PINGRESP
            broker.conn.sendall(publish_packet(i + 1, b"x"))
            written += _read_for(broker.conn, 0.1)
        assert not broker.lost.is_set(), "the client closed a connection that was delivering messages"
        assert len(broker.wait_for(40)) == 40
        assert PINGREQ in written  # it did ask
        assert broker.lost.wait(30), "a broker silent after a PINGREQ was never taken for dead"
    finally:
        broker.close()


def test_while_the_batch_waits_the_client_still_acknowledges_and_pings() -> None:
    """Ingest's inbox is full: on_batch waits, calling stay_alive, for several keepalive periods.
    The PUBACKs of messages acknowledged meanwhile and PINGREQs reach the broker, and the
    connection lasts."""
    client = new_client()
    release = threading.Event()
    broker = FakeBroker(client, keepalive=1)

    def full_inbox(batch: list[Received]) -> None:
        broker._on_batch(batch)
        while not release.wait(0.2):
            client.stay_alive()

    client.on_batch = full_inbox
    try:
        broker.conn.sendall(publish_packet(7, b"x"))
        broker.wait_for(1)
        client.ack_many([7])  # the main thread sent it to Kafka meanwhile
        written = _read_for(broker.conn, 3.5)
        release.set()
        assert written.startswith(struct.pack("!BBH", 0x40, 2, 7)) or struct.pack("!BBH", 0x40, 2, 7) in written
        assert written.count(PINGREQ) >= 2
        broker.conn.sendall(publish_packet(8, b"y"))
        assert [m.mid for m in broker.wait_for(2)] == [7, 8]
        assert not broker.lost.is_set()
    finally:
        broker.close()
