"""The first step of every decoder here: bytes -> a JSON object, or the decoder's error."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["json_object"]


def json_object(raw: bytes | str, error: type[ValueError]) -> dict[str, Any]:
    """``raw`` parsed, when it is a JSON object; else ``error`` saying what it is instead."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise error(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise error(f"not an object but {type(obj).__name__}")
    return obj
