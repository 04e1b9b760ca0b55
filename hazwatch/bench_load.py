"""The paced MQTT load of ``hazwatch bench pipeline``: devices publishing at QoS 1 at a set rate.

A load generator that costs as much CPU as the system under test measures itself: paho spends
97-230 µs of CPU a message and ``mosquitto_pub`` about 30 µs (docs/BENCHMARKS.md §3), and the load
shares the two cores with hazwatch. So this one encodes every MQTT packet *before* a step, with
amqtt's packet classes (a dependency already, the embedded broker's fallback), and during the
step only writes the prepared bytes to one TCP connection per site and counts the broker's
PUBACKs (4 bytes each: a publisher at QoS 1 receives nothing else after its CONNACK).

Pacing: every ``TICK_S`` the messages due by then (rate x elapsed) are written, each site's as one
``sendall``. When the broker reads slower than the rate, TCP pushes back and the step publishes
less than it offered; the result says how much was published, and when.
"""

from __future__ import annotations

import os
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from amqtt.mqtt.connect import ConnectPacket, ConnectPayload, ConnectVariableHeader
from amqtt.mqtt.publish import PublishPacket

__all__ = ["Step", "encode_step", "run_load"]

TICK_S = 0.01
PUBACK = 4  # bytes of one MQTT 3.1.1 PUBACK


@dataclass(frozen=True)
class Step:
    """One load step: ``messages`` (site, topic, payload), offered at ``rate`` messages/s."""

    name: str
    rate: float
    messages: Sequence[tuple[str, str, bytes]]


def encode_step(step: Step) -> tuple[list[str], list[bytes]]:
    """(site of each message, its PUBLISH packet at QoS 1), in publish order."""
    sites, packets = [], []
    for n, (site, topic, payload) in enumerate(step.messages):
        sites.append(site)
        packets.append(PublishPacket.build(topic, payload, n % 65535 + 1, False, 1, False).to_bytes())
    return sites, packets


def _connect(port: int, site: str, password: str) -> socket.socket:
    header = ConnectVariableHeader(keep_alive=0)
    header.username_flag = header.password_flag = header.clean_session_flag = True
    packet = ConnectPacket(variable_header=header,
                           payload=ConnectPayload(client_id=f"bench-load-{site}", username=site, password=password))
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(packet.to_bytes())
    connack = b""
    while len(connack) < 4:
        chunk = sock.recv(4 - len(connack))
        if not chunk:
            raise ConnectionError(f"the broker closed {site}'s connection")
        connack += chunk
    if connack[0] != 0x20 or connack[3] != 0:
        raise ConnectionError(f"the broker refused {site}: CONNACK {connack.hex()}")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def run_load(port: int, passwords: dict[str, str], steps: Sequence[Step], go: Any, ready: Any, out: Any,
             ack_timeout_s: float = 300.0) -> None:
    """The load process: for each step, encode it, signal ``ready``, wait for ``go``, publish it
    paced and wait for every PUBACK; put one result dict per step on ``out``."""
    sites = sorted({site for step in steps for site, _t, _p in step.messages})
    socks = {site: _connect(port, site, passwords[site]) for site in sites}
    selector = selectors.DefaultSelector()
    for site, sock in socks.items():
        sock.setblocking(True)
        selector.register(sock, selectors.EVENT_READ, site)
    leftover = dict.fromkeys(sites, 0)
    acked = 0

    def read_acks(timeout: float) -> None:
        nonlocal acked
        for key, _ in selector.select(timeout):
            data = key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
            if not data:
                raise ConnectionError(f"the broker closed {key.data}'s connection")
            total = leftover[key.data] + len(data)
            acked += total // PUBACK
            leftover[key.data] = total % PUBACK

    for step in steps:
        site_of, packets = encode_step(step)
        ready.set()
        go.wait()
        go.clear()
        acked_before, cpu0 = acked, os.times()
        t0 = time.monotonic()
        sent = 0
        while sent < len(packets):
            due = min(len(packets), int((time.monotonic() - t0) * step.rate) + 1)
            chunks: dict[str, list[bytes]] = {}
            for i in range(sent, due):
                chunks.setdefault(site_of[i], []).append(packets[i])
            for site, parts in chunks.items():
                socks[site].sendall(b"".join(parts))
            sent = due
            read_acks(0)
            pause = t0 + sent / step.rate - time.monotonic()
            if pause > 0:
                read_acks(min(pause, TICK_S))
        publish_s = time.monotonic() - t0
        deadline = time.monotonic() + ack_timeout_s
        while acked - acked_before < len(packets) and time.monotonic() < deadline:
            read_acks(0.1)
        cpu1 = os.times()
        out.put({"step": step.name, "messages": len(packets), "acknowledged": acked - acked_before,
                 "publish_s": publish_s, "acked_s": time.monotonic() - t0,
                 "cpu_s": cpu1.user + cpu1.system - cpu0.user - cpu0.system})
    for sock in socks.values():
        sock.sendall(b"\xe0\x00")  # DISCONNECT
        sock.close()
