"""Fixtures for the console tests (general; the page tests may use them too).

- ``console_config``: the example configuration with its database in ``tmp_path`` (SQLite);
- ``console_store``: the migrated :class:`~alerts.store.Store` of that configuration;
- ``clock``: a settable UTC clock (:class:`Clock`), starting at :data:`T0`;
- ``console_app``: :func:`console.app.create_app` over both (no Kafka reader; feed
  ``console_app.state.console.live`` by hand), API only (``pages=False``);
- ``client``: a :class:`fastapi.testclient.TestClient` of that app (lifespan running);
- ``users``: an admin, an operator and two officers (see :data:`USERS`), passwords :data:`PASSWORD`;
- ``login(client, name)``: log in through ``/api/csrf`` + ``/api/login``; returns the CSRF token
  and sets it as the client's ``X-CSRF-Token`` header.

Episodes are made with the real alerts path: :func:`raise_warning` builds a warning event as the
rules worker would and records it with :func:`alerts.episodes.apply_event`.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from alerts.episodes import apply_event
from alerts.store import Store
from config import example_dir, load_config
from config.models import Config
from console.app import create_app
from console.users import UserService
from formats.warning import WarningEvent, episode_id

T0 = dt.datetime(2026, 12, 1, 2, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"
CH_ENTERPRISE = "临港石化有限公司"  # CH-001
TD_ENTERPRISE = "夏河矿业有限公司"  # TD-001
#: name -> (role, enterprise)
USERS: dict[str, tuple[str, str | None]] = {
    "admin": ("admin", None),
    "op": ("operator", None),
    "officer_ch": ("officer", CH_ENTERPRISE),
    "officer_td": ("officer", TD_ENTERPRISE),
}


class Clock:
    """A settable, thread-safe clock (UTC, aware)."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += dt.timedelta(seconds=seconds)

    def ms(self) -> int:
        return int(self().timestamp() * 1000)


@pytest.fixture
def console_config(tmp_path: Path) -> Config:
    return load_config(example_dir(), env={"HAZWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'console.db'}"})


@pytest.fixture
def console_store(console_config: Config) -> Iterator[Store]:
    store = Store(console_config.settings.database.url)
    try:
        yield store
    finally:
        store.engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def console_app(console_config: Config, console_store: Store, clock: Clock) -> FastAPI:
    return create_app(console_config, console_store, clock=clock, pages=False)


@pytest.fixture
def client(console_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(console_app) as c:
        yield c


@pytest.fixture
def users(console_store: Store) -> dict[str, tuple[str, str | None]]:
    service = UserService(console_store)
    for name, (role, enterprise) in USERS.items():
        service.add(name, PASSWORD, role, enterprise=enterprise, by="test")
    return USERS


def login(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Log ``client`` in as ``name``; returns the session's CSRF token (also set as header)."""
    token = client.get("/api/csrf").json()["csrf"]
    r = client.post("/api/login", json={"username": name, "password": password},
                    headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf"]
    client.headers["X-CSRF-Token"] = csrf
    return csrf


def raise_warning(store: Store, config: Config, site: str, sensor: str, rule: str, *,
                  level: str = "red", previous: str = "normal", raised_ts: int = 1_795_000_000_000,
                  ts: int | None = None, kind: str = "raised", now: dt.datetime = T0,
                  value: float = 60.0) -> str:
    """Record a warning event on the real alerts path; returns the episode id."""
    subject = f"{site}/{sensor}"
    eid = episode_id(subject, rule, raised_ts)
    event = WarningEvent(episode=eid, site=site, subject=subject, rule=rule, kind=kind,  # type: ignore[arg-type]
                         level=level, previous=previous, ts=ts or raised_ts,
                         emitted_at=int(now.timestamp() * 1000), value=value, threshold=50.0,
                         unit="%LEL", detail={})
    with store.session.begin() as s:
        apply_event(s, event, config, now)
    return eid
