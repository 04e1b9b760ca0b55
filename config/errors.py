"""Pydantic's validation errors in an operator's terms.

:func:`operator_reason` turns one error of ``ValidationError.errors()`` into the reason a person
fixing a YAML file can act on, using the model the file is validated by (for the keys and values a
place allows):

============================  ======================================================================
pydantic error type           reason
============================  ======================================================================
``extra_forbidden``           unknown key `threshold`; did you mean `thresholds`?
``missing``                   missing required key `from_number`
``*_type``, ``*_parsing``     wrong type: expected a number, got 'north'
``greater_than`` and the      out of range: must be at most 90, got 127.46
other bounds
``too_short``, ``too_long``   needs at least 2 items, got 1
``literal_error``, ``enum``   'chemcial' is not allowed: use one of 'chemical', 'tailings', 'rain';
                              did you mean 'chemical'?
``string_pattern_mismatch``   bad format 'CH 001': expected an id (1 to 64 letters, digits, ...)
``union_tag_invalid``         unknown kind 'voting': use one of 'vote', ...; did you mean 'vote'?
``value_error``               the model's own message, without pydantic's "Value error, " prefix
============================  ======================================================================

Anything else keeps pydantic's message. Suggestions come from :func:`difflib.get_close_matches`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from config.models_base import ID_PATTERN

__all__ = ["annotation_at", "did_you_mean", "operator_reason"]

#: What a value of a type looks like, for "wrong type" reasons.
_EXPECTED: dict[str, str] = {
    "float": "a number", "int": "a whole number", "string": "text", "bool": "true or false",
    "list": "a list", "tuple": "a list", "set": "a list", "dict": "a mapping (key: value)",
    "model": "a mapping (key: value)", "model_attributes": "a mapping (key: value)",
    "datetime": "a date and time with a UTC offset, e.g. 2026-03-10T09:00:00+08:00",
    "datetime_from_date": "a date and time with a UTC offset, e.g. 2026-03-10T09:00:00+08:00",
    "date": "a date, e.g. 2026-03-10", "time": "a time of day", "decimal": "a number",
}
_TYPE_ERROR = re.compile(r"^(?P<kind>[a-z_]+?)_(type|parsing|parsing_size)$")

#: The patterns of config/models_base.py and config/notify.py, in words.
_PATTERNS: dict[str, str] = {
    ID_PATTERN: "an id (1 to 64 letters, digits, '_', '.' or '-')",
    r"^\d{6}$": "a 6-digit region code (GB/T 2260), e.g. 360321",
    r"^\+[1-9]\d{6,14}$": "a phone number in E.164 form, e.g. +8613800138000",
    r"^\d{3}$": "3 digits",
    r"^\d{2}$": "2 digits",
}

_BOUNDS = {"greater_than": ("gt", "greater than"), "greater_than_equal": ("ge", "at least"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "at most")}


def did_you_mean(word: str, choices: list[str], *, quote: str = "`") -> str:
    """``"; did you mean `x`?"`` for the closest of ``choices``, or ``""``."""
    prefixed = [c for c in choices if c.startswith(word)] if word else []
    if len(prefixed) > 1:  # 'regulators' for 'regulators:county', 'regulators:city', ...
        return f"; did you mean one of {', '.join(f'{quote}{c}{quote}' for c in prefixed)}?"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {quote}{close[0]}{quote}?" if close else ""


def _unwrap(tp: Any) -> Any:
    """``tp`` without ``Annotated`` metadata and without ``None`` in an optional."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _tags(model: type[BaseModel]) -> set[str]:
    """The literal values of a model's fields: a discriminated union names its member by one."""
    out: set[str] = set()
    for field in model.model_fields.values():
        if get_origin(field.annotation) is Literal:
            out |= {str(a) for a in get_args(field.annotation)}
    return out


def _step(tp: Any, part: str | int) -> Any:
    """The type at ``part`` inside ``tp``, or None when it cannot be told."""
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field is not None else None
    origin, args = get_origin(tp), get_args(tp)
    if origin in (list, set, frozenset) and args:
        return args[0] if isinstance(part, int) else None
    if origin is tuple and args:
        if not isinstance(part, int):
            return None
        return args[0] if len(args) == 2 and args[1] is Ellipsis else (args[part] if part < len(args) else None)
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    if origin in (Union, types.UnionType) and isinstance(part, str):
        # a discriminated union: pydantic puts the member's tag (or class name) into the location
        for member in map(_unwrap, args):
            if isinstance(member, type) and issubclass(member, BaseModel) and (
                    part == member.__name__ or part in _tags(member)):
                return _Member(member)
    return None


class _Member:
    """A union member picked by the tag in the location: the tag itself is not a field."""

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model


def annotation_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> Any:
    """The (unwrapped) type at ``loc`` of ``model``, or None when the location cannot be followed."""
    tp: Any = model
    for part in loc:
        if isinstance(tp, _Member):
            tp = tp.model  # the tag was this part; the model is the type at this location
            continue
        tp = _step(tp, part)
        if tp is None:
            return None
    if isinstance(tp, _Member):
        tp = tp.model
    return _unwrap(tp)


def _show(value: Any) -> str:
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (dt.date, dt.time)):  # YAML reads an unquoted timestamp as one
        return value.isoformat()
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return str(value)


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _choices(model: type[BaseModel], loc: tuple[str | int, ...], expected: str) -> list[str]:
    """The values a literal or enum place allows: from the model, else from pydantic's text."""
    tp = annotation_at(model, loc)
    if get_origin(tp) is Literal:
        return [str(a) for a in get_args(tp)]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [str(m.value) for m in tp]
    return re.findall(r"'((?:[^'\\]|\\.)*)'", expected) or [p.strip() for p in re.split(r",| or ", expected)
                                                            if p.strip()]


def operator_reason(model: type[BaseModel], err: Mapping[str, Any]) -> str:
    """The reason for one pydantic error of ``model.model_validate`` (see the module's table)."""
    kind, loc, ctx = err["type"], tuple(err["loc"]), err.get("ctx") or {}
    value = err.get("input")
    key = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        parent = annotation_at(model, loc[:-1])
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            fields = list(parent.model_fields)
            hint = did_you_mean(str(key), fields)
            return f"unknown key `{key}`" + (hint or f" (allowed keys: {', '.join(fields)})")
        return f"unknown key `{key}`"
    if kind == "missing":
        return f"missing required key `{key}`"
    if kind in _BOUNDS:
        name, words = _BOUNDS[kind]
        return f"out of range: must be {words} {_bound(ctx.get(name))}, got {_show(value)}"
    if kind in ("too_short", "too_long"):
        n = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        words = "at least" if kind == "too_short" else "at most"
        items = "item" if n == 1 else "items"
        return f"needs {words} {n} {items}, got {ctx.get('actual_length', '?')}"
    if kind in ("string_too_short", "string_too_long"):
        n = ctx.get("min_length") if kind == "string_too_short" else ctx.get("max_length")
        words = "at least" if kind == "string_too_short" else "at most"
        return f"must have {words} {n} character{'s' if n != 1 else ''}, got {_show(value)}"
    if kind in ("literal_error", "enum"):
        allowed = _choices(model, loc, str(ctx.get("expected", "")))
        return (f"{_show(value)} is not allowed: use one of {', '.join(map(repr, allowed))}"
                + did_you_mean(str(value), allowed, quote="'"))
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        return f"bad format {_show(value)}: expected {_PATTERNS.get(pattern, f'text matching {pattern}')}"
    if kind == "union_tag_invalid":
        field = str(ctx.get("discriminator", "kind")).strip("'")
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return (f"unknown {field} {ctx.get('tag')!r}: use one of {', '.join(map(repr, allowed))}"
                + did_you_mean(str(ctx.get("tag")), allowed, quote="'"))
    if kind == "union_tag_not_found":
        return f"missing required key `{str(ctx.get('discriminator', 'kind')).strip(chr(39))}`"
    if kind == "timezone_aware":
        return f"needs a UTC offset, e.g. 2026-03-10T09:00:00+08:00, got {_show(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {_show(value)}"
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value error|Assertion failed), ", "", str(err["msg"]))
    if kind == "int_from_float":
        return f"wrong type: expected a whole number, got {_show(value)}"
    match = _TYPE_ERROR.match(kind)
    if match and match["kind"] in _EXPECTED:
        return f"wrong type: expected {_EXPECTED[match['kind']]}, got {_show(value)}"
    return str(err["msg"])
