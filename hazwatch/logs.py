"""How every service logs: plain lines by default, JSON lines with ``HAZWATCH_LOG_FORMAT=json``.

A JSON line carries ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``event`` (the message)
and, for an exception, ``exception`` (the traceback), as structlog's ``ProcessorFormatter`` renders
records of the standard ``logging`` module. The level comes from ``HAZWATCH_LOG_LEVEL``.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Configure the root logger of a service's process. Like ``logging.basicConfig``, it leaves a
    root logger that already has handlers alone (a command run inside another program, a test)."""
    logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO is connection chatter
    root = logging.getLogger()
    if root.handlers:
        return
    name = os.environ.get("HAZWATCH_LOG_LEVEL", level).upper()
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("HAZWATCH_LOG_FORMAT", "text").lower() == "json":
        import structlog

        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
                               structlog.processors.TimeStamper(fmt="iso", utc=True)],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(name if name in logging.getLevelNamesMapping() else "WARNING")
