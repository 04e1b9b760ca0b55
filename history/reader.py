"""Reading the history back: one small interface, one implementation per store.

- :class:`VictoriaMetricsReader`: VictoriaMetrics's export API (``/api/v1/export``), for the tests
  and the demo. A line-protocol field ``f`` of measurement ``m`` is its series ``m_f``, the tags
  its labels.
- :class:`InfluxDBReader`: InfluxDB 2's query API (Flux), through influxdb-client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import httpx
import numpy as np
import orjson

from config.history import HistorySettings

__all__ = ["HistoryReader", "InfluxDBReader", "VictoriaMetricsReader", "reader_for", "thin"]


class HistoryReader(Protocol):
    def readings(self, site: str, sensor: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        """(ts, v) of one sensor's readings in ``[start_ms, end_ms]``, oldest first."""
        ...


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class VictoriaMetricsReader:
    def __init__(self, url: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def export(self, selector: str, start_ms: int, end_ms: int) -> list[dict]:
        """Every series matching ``selector`` in the interval, as VictoriaMetrics exports them."""
        r = httpx.get(f"{self.url}/api/v1/export", params={"match[]": selector, "start": start_ms / 1000,
                                                            "end": end_ms / 1000},
                      timeout=self.timeout_s, trust_env=False)
        r.raise_for_status()
        return [orjson.loads(line) for line in r.content.splitlines() if line.strip()]

    def readings(self, site: str, sensor: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        out: list[tuple[int, float]] = []
        for series in self.export(f'reading_v{{site="{_label(site)}",sensor="{_label(sensor)}"}}', start_ms, end_ms):
            out += zip(series["timestamps"], series["values"], strict=True)
        return sorted(out)


class InfluxDBReader:
    def __init__(self, url: str, token: str, org: str, bucket: str) -> None:
        from influxdb_client import InfluxDBClient

        self.client = InfluxDBClient(url=url, token=token, org=org, timeout=30_000)
        self.org, self.bucket = org, bucket

    def readings(self, site: str, sensor: str, start_ms: int, end_ms: int) -> list[tuple[int, float]]:
        query = ('from(bucket: params.bucket) |> range(start: time(v: params.start), stop: time(v: params.stop))'
                 ' |> filter(fn: (r) => r._measurement == "reading" and r._field == "v"'
                 ' and r.site == params.site and r.sensor == params.sensor)')
        params = {"bucket": self.bucket, "site": site, "sensor": sensor,
                  "start": datetime.fromtimestamp(start_ms / 1000, UTC).isoformat(),
                  "stop": datetime.fromtimestamp(end_ms / 1000 + 0.001, UTC).isoformat()}
        tables = self.client.query_api().query(query, org=self.org, params=params)
        return sorted((int(rec.get_time().timestamp() * 1000), float(rec.get_value()))
                      for table in tables for rec in table.records)


def reader_for(settings: HistorySettings) -> HistoryReader | None:
    """The reader of the configured store; None without one."""
    if settings.url is None:
        return None
    if settings.store == "victoriametrics":
        return VictoriaMetricsReader(settings.url)
    return InfluxDBReader(settings.url, settings.token.get_secret_value(), settings.org, settings.bucket)


def thin(points: list[tuple[int, float]], max_points: int) -> list[tuple[int, float]]:
    """At most ``max_points`` of ``points`` (oldest first): each of ``max_points // 2`` equal time
    buckets keeps its minimum and its maximum, so that no peak disappears from a month's chart."""
    if len(points) <= max_points:
        return points
    t = np.fromiter((p[0] for p in points), np.int64, len(points))
    v = np.fromiter((p[1] for p in points), np.float64, len(points))
    buckets = max(1, max_points // 2)
    b = ((t - t[0]) * buckets // max(1, int(t[-1] - t[0]) + 1)).astype(np.int64)
    keep = np.zeros(len(t), dtype=bool)
    starts = np.r_[0, np.flatnonzero(np.diff(b)) + 1]
    for first, end in zip(starts, np.r_[starts[1:], len(v)], strict=True):  # at most max_points // 2
        segment = v[first:end]
        keep[first + int(segment.argmin())] = keep[first + int(segment.argmax())] = True
    return [(int(a), float(c)) for a, c in zip(t[keep], v[keep], strict=True)]
