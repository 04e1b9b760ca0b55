"""What the two group-robot channels share: one markdown POST to a webhook per message, and
which answer means what. A robot's webhook keeps no list of what it posted, so an unknown
outcome cannot be looked up (``can_look_up = False``): the dispatcher posts it again, at least
once rather than at most once, because a warning read twice by a duty group is better than one
that never reached it.
"""

from __future__ import annotations

from typing import Any

import httpx

from alerts.channels.base import Message, Outcome
from alerts.channels.transport import http_status_outcome, httpx_outcome

__all__ = ["markdown", "post"]

MAX_MARKDOWN_BYTES = 4096  # WeCom's limit on markdown.content; DingTalk's is larger


def markdown(message: Message) -> str:
    """A heading (the title) and the text as a quote, cut to the byte limit."""
    text = f"### {message.title}\n> {message.text}" if message.title else message.text
    data = text.encode("utf-8")
    if len(data) <= MAX_MARKDOWN_BYTES:
        return text
    return data[: MAX_MARKDOWN_BYTES - 3].decode("utf-8", errors="ignore") + "…"


def post(client: httpx.Client, url: str, params: dict[str, str], payload: dict[str, Any],
         classify: Any) -> Outcome:
    """POST ``payload``; ``classify(errcode, errmsg)`` maps a JSON answer to an outcome."""
    try:
        response = client.post(url, params=params, json=payload)
    except httpx.HTTPError as exc:
        return httpx_outcome(exc)
    if response.status_code != 200:
        return http_status_outcome(response.status_code, f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        body = response.json()
        code, text = int(body["errcode"]), str(body.get("errmsg", ""))
    except (ValueError, KeyError, TypeError):
        return Outcome("unknown", error=f"an answer that is not the robot's JSON: {response.text[:200]}")
    if code == 0:
        return Outcome("sent")
    outcome: Outcome = classify(code, text)
    return outcome
