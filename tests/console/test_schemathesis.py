"""Property-based tests of the whole JSON API from its OpenAPI document (schemathesis): no input
may give a 5xx, and answers conform to the documented schemas and status codes. Authenticated as
an admin (session cookie + CSRF header), on a real SQLite store with a warning in it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from alerts.store import Store
from config import example_dir, load_config
from console.app import create_app
from console.users import UserService
from tests.console.conftest import Clock, raise_warning

PASSWORD = "schemathesis password"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, dict[str, str], dict[str, str]]]:
    db = tmp_path_factory.mktemp("schemathesis") / "console.db"
    config = load_config(example_dir(), env={"HAZWATCH_DATABASE_URL": f"sqlite:///{db}"})
    store = Store(config.settings.database.url)
    UserService(store).add("admin", PASSWORD, "admin")
    raise_warning(store, config, "CH-001", "GT-101", "combustible_gas")
    app = create_app(config, store, clock=Clock(), pages=False)
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        csrf = c.get("/api/csrf").json()["csrf"]
        r = c.post("/api/login", json={"username": "admin", "password": PASSWORD},
                   headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        cookies = {"hw_session": c.cookies["hw_session"]}
        headers = {"X-CSRF-Token": r.json()["csrf"]}
        yield app, cookies, headers
    store.engine.dispose()


def test_api_conforms_and_never_fails(api: tuple) -> None:
    """Every operation of the document (but log-out, which would end the test's own session),
    25 generated cases each. (``schemathesis.pytest.from_fixture`` does not run under pytest 9,
    so the operations are driven here with Hypothesis directly.)"""
    app, cookies, headers = api
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app).exclude(path="/api/logout")
    tested = []
    succeeded: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            # Data the schema allows may still be refused by the domain rules (a silence that
            # ended in the past, an unknown disposal category): 4xx is the right answer there.
            response = case.call_and_validate(cookies=cookies, headers=headers,
                                              excluded_checks=[positive_data_acceptance])
            assert response.status_code < 500
            if response.status_code < 300:
                succeeded.add(f"{operation.method.upper()} {operation.path}")

        check()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert len(tested) >= 20, tested
    # not vacuous: the session works (random ids rarely name a real site or warning)
    assert {"GET /api/me", "GET /api/warnings", "GET /api/users", "GET /api/sites",
            "GET /api/quality", "GET /api/config"} <= succeeded, sorted(set(tested) - succeeded)


def test_openapi_lists_the_contract(api: tuple) -> None:
    app, _, _ = api
    paths = set(app.openapi()["paths"])  # type: ignore[attr-defined]
    assert {"/api/login", "/api/me", "/api/map", "/api/sites", "/api/sites/{site_id}",
            "/api/sites/{site_id}/series", "/api/warnings", "/api/warnings/{episode_id}",
            "/api/warnings/{episode_id}/ack", "/api/warnings/{episode_id}/dispose",
            "/api/warnings/{episode_id}/close", "/api/notifications", "/api/quality",
            "/api/silences", "/api/silences/{silence_id}/end", "/api/audit", "/api/users", "/api/config",
            "/api/csrf", "/api/logout", "/api/health"} <= paths


