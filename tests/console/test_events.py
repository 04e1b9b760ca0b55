"""The live event stream over a real HTTP server (uvicorn in a thread): warning, health, episode,
readings and site events, filtered by what the user sees."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from alerts.episodes import EpisodeService
from console.service import ConsoleServer
from tests.console.conftest import PASSWORD, Clock, raise_warning
from formats.health import SensorHealth
from formats.readings import Readings
from formats.warning import WarningEvent


@pytest.fixture
def server(console_app: FastAPI) -> Iterator[ConsoleServer]:
    with ConsoleServer(console_app) as s:
        yield s


class Stream:
    """Reads an event stream in a thread; ``next(name)`` waits for the next event of that name."""

    def __init__(self, url: str, cookies: httpx.Cookies) -> None:
        self.events: queue.Queue[tuple[str, object]] = queue.Queue()
        self.backlog: list[tuple[str, Any]] = []
        self.client = httpx.Client(base_url=url, cookies=cookies, timeout=30, trust_env=False)
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        assert self.opened.wait(10)

    def _read(self) -> None:
        try:
            with self.client.stream("GET", "/api/events") as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                name = None
                for line in r.iter_lines():
                    if line.startswith("retry:"):
                        self.opened.set()
                    elif line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name:
                        self.events.put((name, orjson.loads(line[6:])))
        except (httpx.HTTPError, RuntimeError):
            pass

    def next(self, name: str, timeout_s: float = 10, where: Any = None) -> Any:
        """The first event of that name (and matching ``where``) not taken yet. Events of other
        names stay for later calls: the stream need not send them in the order a test asks for
        them (a ``site`` event of a tick may go out before the ``warning`` that caused it)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for i, (got, data) in enumerate(self.backlog):
                if got == name and (where is None or where(data)):
                    del self.backlog[i]
                    return data
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise queue.Empty
                self.backlog.append(self.events.get(timeout=remaining))
            except queue.Empty:
                raise AssertionError(f"no {name} event within {timeout_s} s") from None

    def names(self) -> list[str]:
        out = [got for got, _ in self.backlog]
        self.backlog.clear()
        while not self.events.empty():
            out.append(self.events.get_nowait()[0])
        return out

    def close(self) -> None:
        self.client.close()


def _login(url: str, name: str) -> httpx.Cookies:
    with httpx.Client(base_url=url, trust_env=False) as c:
        csrf = c.get("/api/csrf").json()["csrf"]
        r = c.post("/api/login", json={"username": name, "password": PASSWORD},
                   headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        return c.cookies


def _warning(site: str, sensor: str, level: str, clock: Clock) -> WarningEvent:
    return WarningEvent(episode=f"ep-{site}", site=site, subject=f"{site}/{sensor}", rule="r", kind="raised",
                        level=level, previous="normal", ts=clock.ms(), emitted_at=clock.ms(), value=1.0,
                        threshold=1.0, unit="")


def test_stream_filters_by_role(server: ConsoleServer, console_app: FastAPI, users, clock: Clock,
                                console_store, console_config) -> None:
    live = console_app.state.console.live
    op = Stream(server.url, _login(server.url, "op"))
    officer = Stream(server.url, _login(server.url, "officer_ch"))
    try:
        live.ingest_warning(_warning("TD-001", "PZ-01", "red", clock))
        live.ingest_warning(_warning("CH-001", "GT-101", "orange", clock))
        w = op.next("warning")
        assert w["site"] == "TD-001" and w["site_name"] == console_config.site("TD-001").name
        assert officer.next("warning")["site"] == "CH-001"  # TD-001's never reaches the officer
        # a site changes level: a site event
        assert officer.next("site")["id"] == "CH-001"
        # readings are coalesced into one readings event
        live.ingest_readings(Readings(site="CH-001", sensor=["GT-101"], ts=[clock.ms()], v=[7.5], q=[0]))
        live.ingest_readings(Readings(site="TD-001", sensor=["PZ-01"], ts=[clock.ms()], v=[3.0], q=[0]))
        got = officer.next("readings")
        assert got == [{"site": "CH-001", "sensor": "GT-101", "ts_ms": clock.ms(), "value": 7.5}]
        # an episode written to the store (the alerts path) is pushed by the poller
        eid = raise_warning(console_store, console_config, "CH-001", "GT-101", "combustible_gas", now=clock())
        assert officer.next("episode")["id"] == eid
        EpisodeService(console_store).acknowledge(eid, by="someone", now=clock())
        assert officer.next("episode")["state"] == "acknowledged"
        raise_warning(console_store, console_config, "TD-001", "PZ-01", "phreatic_depth", now=clock())
        assert op.next("episode", where=lambda d: d["site"] == "TD-001")["rule"] == "phreatic_depth"
        live.ingest_health(SensorHealth(site="CH-001", subject="CH-001/GT-102", sensor="GT-102", check="stuck",
                                        state="fault", ts=clock.ms(), detected_at=clock.ms(),
                                        detail={"active": ["stuck"]}))
        assert officer.next("health")["sensor"] == "GT-102"
        assert "TD-001" not in str(officer.names())
    finally:
        op.close()
        officer.close()


def test_stream_needs_a_session(server: ConsoleServer) -> None:
    assert httpx.get(f"{server.url}/api/events", trust_env=False).status_code == 401


def test_site_states_are_computed_once_per_tick_for_every_stream(
        console_app: FastAPI, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    import console.events as events

    ctx = console_app.state.console
    calls: list[str] = []
    real = events.site_summary

    def counted(site, live, opened):  # noqa: ANN001, ANN202
        calls.append(site.id)
        return real(site, live, opened)

    monkeypatch.setattr(events, "site_summary", counted)
    shared = events.SiteStates()
    sites = len(ctx.config.sites)
    shared.refresh(ctx, 100.0)
    gen0 = shared.generation
    for _stream in range(50):  # fifty streams ticking within the same half tick
        shared.refresh(ctx, 100.1)
        assert shared.changed_since(gen0) == (gen0, [])
    assert len(calls) == sites  # one computation, not one per stream
    ctx.live.ingest_warning(_warning("CH-001", "GT-101", "red", clock))
    shared.refresh(ctx, 100.6)
    assert len(calls) == 2 * sites
    gen1, changed = shared.changed_since(gen0)
    assert gen1 == gen0 + 1 and [(s["id"], s["level"]) for s in changed] == [("CH-001", "red")]
    assert shared.changed_since(gen1) == (gen1, [])


def test_a_stopping_console_ends_the_open_streams_and_stops(console_app: FastAPI, users) -> None:
    """A browser left open must not hold the console's shutdown (a restart, a deploy): the stream
    ends cleanly -- the page reconnects to the next console -- and the server stops, without the
    cancellation of requests that its grace time would otherwise come to."""
    server = ConsoleServer(console_app).start()
    ended: list[object] = []

    def read() -> None:
        try:
            with httpx.Client(base_url=server.url, cookies=_login(server.url, "op"), timeout=30,
                              trust_env=False) as client, client.stream("GET", "/api/events") as r:
                for _line in r.iter_lines():
                    opened.set()
            ended.append("end of stream")
        except httpx.HTTPError as exc:
            ended.append(exc)

    opened = threading.Event()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10), "the stream did not open"
    server.stop()
    reader.join(10)
    assert ended == ["end of stream"]
    assert not server.thread.is_alive(), "the console is still serving"
