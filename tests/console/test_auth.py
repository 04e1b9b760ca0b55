"""Log-in, sessions, CSRF, rate limiting, roles, and the audit rows they write."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from alerts.store import Action, Store
from console.auth import LoginLimiter
from console.users import UserRow, WebSession, hash_password, verify_password
from tests.console.conftest import PASSWORD, Clock, login


def test_password_hash_is_argon2id_and_verifies() -> None:
    h = hash_password("s3cret-password")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "s3cret-password")
    assert not verify_password(h, "s3cret-passworD")
    assert not verify_password("not a hash", "s3cret-password")


def test_login_sets_flags_and_stores_only_the_token_hash(
        client: TestClient, users: dict, console_store: Store) -> None:
    csrf = client.get("/api/csrf").json()["csrf"]
    r = client.post("/api/login", json={"username": "op", "password": PASSWORD},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert r.json()["username"] == "op" and r.json()["role"] == "operator"
    cookie = next(v for k, v in r.headers.multi_items()
                  if k == "set-cookie" and v.startswith("hw_session="))
    flags = {f.strip().split("=")[0].lower() for f in cookie.split(";")}
    assert {"httponly", "path", "max-age"} <= flags
    assert "samesite=strict" in cookie.lower()
    assert "secure" not in flags  # served on 127.0.0.1 over plain HTTP (console.secure_cookies)
    token = cookie.split(";")[0].split("=", 1)[1]
    with console_store.session() as s:
        stored = s.scalars(select(WebSession.token_hash)).all()
    assert stored == [hashlib.sha256(token.encode()).hexdigest()]
    me = client.get("/api/me").json()
    assert me["csrf"] == r.json()["csrf"] and me["enterprise"] is None


def test_secure_flag_when_not_on_loopback(console_config, console_store, clock, users) -> None:
    from console.app import create_app

    settings = console_config.settings.model_copy(
        update={"console": console_config.settings.console.model_copy(update={"secure_cookies": True})})
    app = create_app(console_config.model_copy(update={"settings": settings}), console_store,
                     clock=clock, pages=False)
    with TestClient(app, base_url="https://testserver") as c:
        csrf = c.get("/api/csrf").json()["csrf"]
        r = c.post("/api/login", json={"username": "op", "password": PASSWORD},
                   headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        session_cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie" and "hw_session=" in v]
        assert "Secure" in session_cookie[0]


def test_wrong_password_is_401_and_audited(client: TestClient, users: dict,
                                           console_store: Store) -> None:
    csrf = client.get("/api/csrf").json()["csrf"]
    r = client.post("/api/login", json={"username": "op", "password": "wrong password"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401
    assert "密码" in r.json()["detail"]  # zh-CN by default
    r = client.post("/api/login?lang=en", json={"username": "nobody", "password": "x"},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401 and "password" in r.json()["detail"]
    assert client.get("/api/me").status_code == 401
    with console_store.session() as s:
        rows = s.execute(select(Action.action, Action.actor)).all()
    assert ("login_failed", "op") in rows and ("login_failed", "nobody") in rows


def test_login_needs_the_double_submit_cookie(client: TestClient, users: dict) -> None:
    body = {"username": "op", "password": PASSWORD}
    assert client.post("/api/login", json=body).status_code == 403
    client.get("/api/csrf")
    assert client.post("/api/login", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403


def test_rate_limit_after_five_failures_per_user_name(client: TestClient, users: dict,
                                                      clock: Clock) -> None:
    csrf = client.get("/api/csrf").json()["csrf"]
    bad = {"username": "op", "password": "wrong password"}
    for _ in range(5):
        assert client.post("/api/login", json=bad, headers={"X-CSRF-Token": csrf}).status_code == 401
    good = {"username": "op", "password": PASSWORD}
    r = client.post("/api/login", json=good, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= 300
    clock.advance(301)  # the window has passed
    assert client.post("/api/login", json=good, headers={"X-CSRF-Token": csrf}).status_code == 200


def test_rate_limit_per_client_address(client: TestClient, users: dict) -> None:
    csrf = client.get("/api/csrf").json()["csrf"]
    for name in ("a1", "a2", "a3", "a4", "a5"):
        r = client.post("/api/login", json={"username": name, "password": "x"},
                        headers={"X-CSRF-Token": csrf})
        assert r.status_code == 401
    r = client.post("/api/login", json={"username": "admin", "password": PASSWORD},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 429 and "Retry-After" in r.headers


@pytest.mark.parametrize(("failures", "blocked"), [(4, False), (5, True), (6, True)])
def test_limiter_counts_within_the_window(failures: int, blocked: bool) -> None:
    lim = LoginLimiter(5, 300.0)
    for i in range(failures):
        lim.failed(["user:x"], 1000.0 + i)
    assert (lim.retry_after(["user:x"], 1010.0) is not None) is blocked
    assert lim.retry_after(["user:x"], 1000.0 + failures + 300.0) is None


def test_api_writes_need_the_csrf_header(client: TestClient, users: dict) -> None:
    csrf = login(client, "op")
    del client.headers["X-CSRF-Token"]
    body = {"matcher": {"site": "CH-001"}, "ends_at": "2026-12-01T05:00:00Z", "reason": "calibration"}
    assert client.post("/api/silences", json=body).status_code == 403
    assert client.post("/api/silences", json=body, headers={"X-CSRF-Token": "nope"}).status_code == 403
    assert client.post("/api/logout").status_code == 403
    assert client.post("/api/silences", json=body, headers={"X-CSRF-Token": csrf}).status_code == 201


def test_logout_ends_the_session(client: TestClient, users: dict, console_store: Store) -> None:
    login(client, "op")
    assert client.post("/api/logout").json() == {}
    assert client.get("/api/me").status_code == 401
    with console_store.session() as s:
        assert s.scalars(select(WebSession)).all() == []
        actions = s.execute(select(Action.action, Action.actor).order_by(Action.id)).all()
    assert [a for a in actions if a[1] == "op"] == [("login", "op"), ("logout", "op")]


def test_session_expires(client: TestClient, users: dict, clock: Clock) -> None:
    login(client, "op")
    clock.advance(12 * 3600 - 1)
    assert client.get("/api/me").status_code == 200
    clock.advance(2)
    assert client.get("/api/me").status_code == 401


def test_users_admin_only_and_audited(client: TestClient, users: dict, console_store: Store) -> None:
    login(client, "op")
    assert client.get("/api/users").status_code == 403
    client.post("/api/logout")
    client.cookies.clear()
    login(client, "admin")
    names = [u["username"] for u in client.get("/api/users").json()]
    assert names == sorted(["admin", "op", "officer_ch", "officer_td"])
    body = {"username": "newop", "password": "another good password", "role": "operator"}
    r = client.post("/api/users", json=body)
    assert r.status_code == 201 and r.json()["created_by"] == "admin"
    assert client.post("/api/users", json=body).status_code == 409
    short = {**body, "username": "x2", "password": "short"}
    assert client.post("/api/users", json=short).status_code == 422
    nowhere = {**body, "username": "x3", "role": "officer", "enterprise": "No Such Co"}
    assert client.post("/api/users", json=nowhere).status_code == 422
    with console_store.session() as s:
        row = s.scalar(select(UserRow).where(UserRow.username == "newop"))
        audit = s.execute(select(Action.actor, Action.text).where(Action.action == "user_create")).all()
    assert row is not None and row.password_hash.startswith("$argon2id$")
    assert ("admin", "newop") in audit


def test_disabled_user_cannot_log_in(client: TestClient, users: dict, console_store: Store) -> None:
    with console_store.session.begin() as s:
        s.scalar(select(UserRow).where(UserRow.username == "op")).disabled = True  # type: ignore[union-attr]
    csrf = client.get("/api/csrf").json()["csrf"]
    r = client.post("/api/login", json={"username": "op", "password": PASSWORD},
                    headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401


def test_no_docs_ui_and_openapi_under_api(client: TestClient) -> None:
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/api/openapi.json").json()["info"]["title"] == "hazwatch console"
    assert client.get("/api/health").json() == {"ok": True, "live": False}  # no Kafka reader


@pytest.mark.parametrize(("target", "kept"), [
    ("/warnings?state=open", True),
    ("/sites/CH-001", True),
    ("/\\evil.example", False),
    ("/\t/evil.example", False),
    ("//evil.example", False),
    ("https://evil.example/", False),
    ("/ok/../\\x", False),
])
def test_login_page_next_stays_on_this_origin(console_config, console_store, clock,
                                             target: str, kept: bool) -> None:
    import re

    from console.app import create_app

    app = create_app(console_config, console_store, clock=clock, pages=True)
    with TestClient(app) as c:
        page = c.get("/login", params={"next": target}).text
    shown = re.search(r'data-next="([^"]*)"', page)
    assert shown is not None
    assert shown.group(1) == (target if kept else "/")


def test_concurrent_wrong_log_ins_run_at_most_the_limit_of_password_checks(
        client: TestClient, console_app, users: dict) -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    ctx = console_app.state.console
    checks: list[str] = []
    running, most = [0], [0]
    lock = threading.Lock()

    def slow_wrong(username: str, password: str) -> None:  # stands in for a slow argon2 verify
        with lock:
            checks.append(username)
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1

    ctx.users.authenticate = slow_wrong
    csrf = client.get("/api/csrf").json()["csrf"]

    def attempt(i: int) -> int:
        return client.post("/api/login", json={"username": "admin", "password": f"guess{i}"},
                           headers={"X-CSRF-Token": csrf}).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(attempt, range(20)))
    assert len(checks) <= 5 and codes.count(401) == len(checks)
    assert codes.count(429) == 20 - len(checks)
    assert most[0] <= 4  # auth.VERIFY_SLOTS


def test_limiter_attempt_records_a_provisional_failure_that_success_takes_back() -> None:
    lim = LoginLimiter(2, 300.0)
    keys = ["user:x", "addr:1"]
    assert lim.attempt(keys, 10.0) is None
    lim.release(keys, 10.0)  # the log-in succeeded
    assert lim.attempt(keys, 11.0) is None and lim.attempt(keys, 12.0) is None
    assert lim.attempt(keys, 13.0) == pytest.approx(298.0)
