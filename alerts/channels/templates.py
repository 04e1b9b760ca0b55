"""Approved SMS templates (Aliyun, Tencent): which template a message uses, and its parameters.

Chinese SMS providers send only text from templates they approved, with variables the sender
fills. The configuration (``config.channels``) lists templates, each for some warning levels and
kinds; the first that matches the message is used, and its parameters are taken from the
message's named fields (``Message.fields``, built by :func:`message_fields`), each cut to the
provider's variable length. A template needing a field the message lacks is a failed send
(a configuration error that resending cannot fix).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from alerts.channels.base import Message
from config.channels import AliyunTemplate, TencentTemplate

__all__ = ["MissingField", "choose", "fill", "fill_list"]

T = TypeVar("T", AliyunTemplate, TencentTemplate)


class MissingField(ValueError):
    """The chosen template needs a field the message does not carry."""


def choose(templates: Sequence[T], message: Message) -> T:
    """The first template whose levels and kinds admit the message (the last matches all)."""
    for t in templates:
        if (t.levels is None or message.level in t.levels) and (t.kinds is None or message.kind in t.kinds):
            return t
    return templates[-1]


def _value(fields: Mapping[str, str], name: str, max_chars: int) -> str:
    value = fields.get(name)
    if value is None or value == "":
        raise MissingField(f"the template needs the field {name!r}, which this message does not carry")
    return value if len(value) <= max_chars else value[: max_chars - 1] + "…"


def fill(params: Mapping[str, str], message: Message, max_chars: int) -> dict[str, str]:
    """Aliyun's TemplateParam: variable -> value."""
    fields = {"text": message.text, **message.fields}
    return {var: _value(fields, name, max_chars) for var, name in params.items()}


def fill_list(params: Sequence[str], message: Message, max_chars: int) -> list[str]:
    """Tencent's TemplateParamSet: the values of {1}, {2}, ... in order."""
    fields = {"text": message.text, **message.fields}
    return [_value(fields, name, max_chars) for name in params]
