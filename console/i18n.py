"""The console's user-visible strings in zh-CN (default) and English.

The strings live in ``console/static/i18n/{lang}.json`` so that the server-rendered templates and
the browser scripts use the same table: a page embeds its language's table as JSON and the scripts
look keys up there. The language is ``?lang=``, else the cookie ``hw_lang``, else zh-CN -- the same
order as the JSON API (docs/CONSOLE.md).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from starlette.requests import Request

__all__ = ["DEFAULT_LANG", "LANGS", "Translator", "request_lang", "strings"]

LANGS: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LANG = "zh-CN"
LANG_COOKIE = "hw_lang"
_DIR = Path(__file__).resolve().parent / "static" / "i18n"


@functools.cache
def strings(lang: str) -> dict[str, str]:
    """The string table of ``lang`` (one of :data:`LANGS`)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r} (one of {', '.join(LANGS)})")
    return json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def request_lang(request: Request) -> str:
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LANGS:
            return candidate
    return DEFAULT_LANG


class Translator:
    """``t("key", name=...)`` in templates; a missing key shows as the key itself, never as an error."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.table = strings(lang)

    def __call__(self, key: str, **values: object) -> str:
        text = self.table.get(key, key)
        for name, value in values.items():
            text = text.replace("{" + name + "}", str(value))
        return text
