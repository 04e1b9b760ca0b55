"""The embedded stack's history store: VictoriaMetrics (Debian's ``victoria-metrics``), which takes
InfluxDB's v2 write API as production's InfluxDB 2 does, and answers queries for the tests, the
demo and the console (history/reader.py).

Started with 31 days' retention, listening on 127.0.0.1 only, and ``-search.latencyOffset=0s`` so
that what was just written can be read back at once (its default hides the last 30 s).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from hazwatch.runtime import Process

__all__ = ["VICTORIA_METRICS", "history_ready", "victoria_metrics"]

VICTORIA_METRICS = "victoria-metrics"


def victoria_metrics(workdir: Path, port: int, retention: str = "31d") -> Process:
    """The command of a VictoriaMetrics on ``port`` keeping its data under ``workdir`` for
    ``retention`` (not started); it drops samples older than that on arrival."""
    binary = shutil.which(VICTORIA_METRICS)
    if binary is None:
        raise FileNotFoundError("victoria-metrics is not installed (Debian package victoria-metrics; .ci/run installs it)")
    data = workdir / "history-data"
    data.mkdir(parents=True, exist_ok=True)
    return Process("history-store", [binary, f"-storageDataPath={data}", f"-httpListenAddr=127.0.0.1:{port}",
                                      f"-retentionPeriod={retention}", "-search.latencyOffset=0s", "-loggerLevel=ERROR"],
                   workdir / "logs" / "history-store.log")


def history_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2, trust_env=False).text.strip() == "OK"
    except httpx.HTTPError:
        return False
