"""A service's operations endpoint: ``GET /metrics`` and ``GET /healthz``.

- ``/metrics``: the Prometheus text format of prometheus-client's default registry (the process's
  own metrics, docs/OPERATIONS.md lists them).
- ``/healthz``: ``200 {"ok": true, "status": "ok", "service": ..., "checks": {name: null}}`` when
  every dependency answers, else ``503`` and ``"unhealthy"`` with the reason of each one that does
  not (``{"kafka": "Kafka at ... did not answer: ..."}``). A check is a callable that returns None
  when healthy or a reason. Some checks only degrade (ingest's full inbox): ``200``, ``"degraded"``.

Ingest and the rules worker serve it on ``HAZWATCH_OPS_PORT`` (unset: not served) and
``HAZWATCH_OPS_HOST`` (default 127.0.0.1; 0.0.0.0 in a container), from a daemon thread. The
alerts service and the console answer the same two paths on their own HTTP servers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import make_wsgi_app

__all__ = ["Check", "KafkaCheck", "health", "serve_from_env"]

log = logging.getLogger("hazwatch.ops")

Check = Callable[[], "str | None"]


def health(service: str, checks: Mapping[str, Check], soft: Iterable[str] = ()) -> tuple[bool, dict[str, Any]]:
    """Run every check (a check that raises fails, with the exception as its reason). A failing
    check named in ``soft`` makes the service ``degraded`` (still ok: it works, late), any other
    ``unhealthy``."""
    results: dict[str, str | None] = {}
    for name, check in checks.items():
        try:
            results[name] = check()
        except Exception as exc:  # noqa: BLE001 - a failing check is a finding, not a crash
            results[name] = f"{type(exc).__name__}: {exc}"
    failing = {name for name, r in results.items() if r is not None}
    ok = failing <= set(soft)
    status = "unhealthy" if not ok else "degraded" if failing else "ok"
    return ok, {"ok": ok, "status": status, "service": service, "checks": results}


class KafkaCheck:
    """Kafka answers a metadata request within ``timeout_ms``. One admin client, made again after a
    failure; the answer is kept for ``cache_s`` so that frequent probes cost one request."""

    def __init__(self, bootstrap: str, *, client_id: str, timeout_ms: int = 3000, cache_s: float = 2.0) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.timeout_ms = timeout_ms
        self.cache_s = cache_s
        self._admin: Any = None
        self._lock = threading.Lock()
        self._answer: tuple[float, str | None] = (-1e9, None)

    def __call__(self) -> str | None:
        with self._lock:
            at, answer = self._answer
            if time.monotonic() - at < self.cache_s:
                return answer
            answer = self._ask()
            self._answer = (time.monotonic(), answer)
            return answer

    def _ask(self) -> str | None:
        from kafka import KafkaAdminClient

        try:
            if self._admin is None:
                self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                                               request_timeout_ms=self.timeout_ms)
            self._admin.describe_cluster()
            return None
        except Exception as exc:  # noqa: BLE001 - whatever it is, Kafka did not answer
            self.close()
            return f"Kafka at {self.bootstrap} did not answer: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:  # noqa: BLE001 - closing a broken client
                pass
            self._admin = None


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow health check does not hold a scrape


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass  # a scrape every few seconds is not news


def _app(service: str, checks: Mapping[str, Check], soft: Iterable[str]) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            ok, body = health(service, checks, soft)
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
            return [orjson.dumps(body)]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"GET /metrics or /healthz\n"]

    return app


def serve_from_env(service: str, checks: Mapping[str, Check], soft: Iterable[str] = ()) -> WSGIServer | None:
    """Serve ``/metrics`` and ``/healthz`` on ``HAZWATCH_OPS_PORT`` from a daemon thread (None: unset)."""
    port = os.environ.get("HAZWATCH_OPS_PORT")
    if not port:
        return None
    host = os.environ.get("HAZWATCH_OPS_HOST", "127.0.0.1")
    server = make_server(host, int(port), _app(service, checks, tuple(soft)), server_class=_Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name=f"{service}-ops", daemon=True).start()
    log.info("%s: /metrics and /healthz on http://%s:%s", service, host, port)
    return server
