"""Text with a NUL character (which PostgreSQL can neither store nor compare) is refused with a
clear reason and never reaches the database, on SQLite and PostgreSQL alike: a 422 validation
error, in the path, the query or a JSON body."""

from __future__ import annotations

import pytest

from tests.console.conftest import login
from tests.console.test_api import any_backend_client  # noqa: F401 - the fixture

NUL_PATHS = ["/api/warnings/a%00b", "/api/sites/CH-001%00", "/api/sites/CH%00/series",
             "/api/warnings?site=CH-001%00", "/api/notifications?to=%00", "/api/audit?actor=x%00"]


@pytest.mark.parametrize("path", NUL_PATHS)
def test_a_nul_in_the_path_or_query_is_a_422(any_backend_client, path: str) -> None:  # noqa: F811
    client, _ = any_backend_client
    login(client, "op")
    r = client.get(path)
    assert r.status_code == 422, (r.status_code, r.text)
    (error,) = r.json()["detail"]
    assert "NUL" in error["msg"] and error["loc"][0] == ("query" if "?" in path else "path")


@pytest.mark.parametrize("change", [{"reason": "检修\u0000"}, {"matcher": {"site": "TD-001\u0000"}},
                                    {"matcher": {"site\u0000": "TD-001"}}])
def test_a_nul_in_a_json_body_is_refused_and_writes_nothing(any_backend_client, change: dict) -> None:  # noqa: F811
    client, _ = any_backend_client
    login(client, "op")
    body = {"kind": "maintenance", "matcher": {"site": "TD-001"}, "ends_at": "2026-12-01T06:00:00Z",
            "reason": "浸润线传感器校准"} | change
    r = client.post("/api/silences", json=body)
    assert r.status_code == 422, (r.status_code, r.text)
    assert client.get("/api/silences").json() == []
