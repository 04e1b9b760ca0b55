"""``HAZWATCH_LOG_FORMAT=json`` makes every log record one JSON object per line (hazwatch/logs.py)."""

from __future__ import annotations

import logging

import orjson
import pytest

from hazwatch.logs import configure_logging


def test_json_lines(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HAZWATCH_LOG_FORMAT", "json")
    monkeypatch.setenv("HAZWATCH_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        root.handlers[:] = []  # a fresh process's root logger (pytest's capture handlers aside)
        configure_logging()
        log = logging.getLogger("hazwatch.ingest")
        log.info("dead-letter %s: %d rejected", "hw/v1/CH-001/batch", 3)
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("validator failed")
        lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        root.handlers[:], root.level = saved
    assert [(x["level"], x["logger"], x["event"]) for x in lines] == [
        ("info", "hazwatch.ingest", "dead-letter hw/v1/CH-001/batch: 3 rejected"),
        ("error", "hazwatch.ingest", "validator failed")]
    assert "ValueError: bad" in lines[1]["exception"]
    assert all(x["timestamp"].endswith("Z") for x in lines)
