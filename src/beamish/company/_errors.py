"""Turn pydantic's validation errors into lines a user can act on: file, key path, expectation.

pydantic's own messages name Python types ("Input should be a valid number"); a config author
wants to know which key of which file is wrong and what would be right, in TOML's words.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError


def key_path(loc: Sequence[str | int]) -> str:
    """``('agents', 'ceo', 'schedules', 0, 'cron')`` → ``agents.ceo.schedules[0].cron``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (so an unknown key can list the known ones)."""
    current: Any = root
    for part in loc:
        if isinstance(part, int):
            current = _unwrap(current, list)
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        else:
            current = _unwrap(current, dict)
    current = _strip_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return current
    return None


def _strip_optional(tp: Any) -> Any:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _unwrap(tp: Any, container: type) -> Any:
    tp = _strip_optional(tp)
    if typing.get_origin(tp) is container:
        args = typing.get_args(tp)
        return args[-1] if args else Any
    return tp


_SIGNS = {"greater_than_equal": "≥", "greater_than": ">", "less_than_equal": "≤", "less_than": "<"}


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _expected(error: Any, root: type[BaseModel]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = _shown(error.get("input"))
    loc = error["loc"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        holder = _model_at(root, loc[:-1])
        known = ", ".join(holder.model_fields) if holder else ""
        close = difflib.get_close_matches(str(loc[-1]), list(holder.model_fields), n=1) if holder else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key ({hint}expected one of: {known})" if known else "unknown key"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {got}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = _SIGNS[kind]
        bound = next(iter(ctx.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"expected a number {sign} {bound}, got {got}"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"):
        what = "an integer" if kind.startswith("int") else "a number"
        return f"expected {what}, got {got}"
    if kind in ("string_type",):
        return f"expected a string, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("list_type",):
        return f"expected a list, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a table, got {got}"
    return str(error["msg"])


def describe(exc: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """``(key path, expectation)`` for each error, in the file's order as pydantic reports it."""
    return [(key_path(e["loc"]), _expected(e, root)) for e in exc.errors()]
