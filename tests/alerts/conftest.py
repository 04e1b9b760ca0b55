"""Fixtures for the alerts tests: the fake Twilio server, an SMS channel, a callback receiver."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import httpx
import pytest

from alerts.channels.sms import SmsChannel
from alerts.fakes.twilio import FakeTwilioServer

FROM_NUMBER = "+15005550006"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(step_s=0.02) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeTwilioServer) -> FakeTwilioServer:
    """The module's fake server, with no messages and no failure rules."""
    httpx.post(fake_server.url + "/_fake/reset", trust_env=False).raise_for_status()
    return fake_server


@pytest.fixture
def channel(fake: FakeTwilioServer) -> SmsChannel:
    return SmsChannel(
        fake.account_sid, fake.auth_token, FROM_NUMBER, base_url=fake.url, timeout_s=5.0
    )


@dataclass
class Received:
    path: str
    signature: str | None
    params: dict[str, str]


@dataclass
class CallbackReceiver:
    """A tiny HTTP server that records the status callbacks it gets."""

    base_url: str
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@pytest.fixture
def callback_receiver() -> Iterator[CallbackReceiver]:
    receiver: CallbackReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            params = dict(parse_qsl(self.rfile.read(length).decode("utf-8")))
            with receiver.lock:
                receiver.requests.append(
                    Received(self.path, self.headers.get("X-Twilio-Signature"), params)
                )
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = CallbackReceiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
