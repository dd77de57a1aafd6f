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
        nested = len(loc) >= 3 and isinstance(loc[-2], str) and holder is not None  # [a.b.c], not [[…]]
        parent = _model_at(root, loc[:-2]) if nested else None
        if not close and parent is not None and loc[-1] in parent.model_fields:
            # TOML: every key below a [table] header is the table's, so a sub-table written between
            # its parent's keys takes the ones that follow it
            table, above = key_path(loc[:-1]), key_path(loc[:-2])
            return (
                f"unknown key ({loc[-1]!r} is a key of [{above}]: the keys below a [{table}] header are "
                f"its own; move [{table}] after them)"
            )
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
    if kind == "too_short":
        least, length = ctx.get("min_length"), ctx.get("actual_length")
        return f"expected at least {least} {'entry' if least == 1 else 'entries'}, got {length or 'none'}"
    return str(error["msg"])


def describe(exc: ValidationError, root: type[BaseModel]) -> list[tuple[str, str]]:
    """``(key path, expectation)`` for each error, in the file's order as pydantic reports it."""
    out: list[tuple[str, str]] = []
    for error in _without_union_tags(list(exc.errors()), root):
        line = (key_path(error["loc"]), _expected(error, root))
        if line not in out:
            out.append(line)
    return out


#: Errors that say only "not this type": the value never reached the member's own checks.
_WRONG_TYPE = {
    "string_type": "a string",
    "float_type": "a number",
    "int_type": "an integer",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
}


def _without_union_tags(errors: list[Any], root: type[BaseModel]) -> list[Any]:
    """A key whose type is a union (``model``: a string or a list) gets one error per member, each
    under the member's tag (``model.str``, ``model.list[str][1]``). Keep the member the value was
    meant for — the one that got past its type check — with the tag dropped; when none did, one
    error: "expected a string or a list"."""
    by_key: dict[tuple[Any, ...], list[tuple[Any, int]]] = {}
    out: list[Any] = []
    for error in errors:
        loc = tuple(error["loc"])
        at = _union_tag_at(root, loc)
        if at is None:
            out.append(error)
            continue
        key = loc[:at]
        if key not in by_key:
            by_key[key] = []
            out.append(key)  # a placeholder: the key's errors go where its first one was
        by_key[key].append((error, at))
    result: list[Any] = []
    for item in out:
        if not isinstance(item, tuple):
            result.append(item)
            continue
        members = by_key[item]
        deeper = [
            {**e, "loc": e["loc"][:at] + e["loc"][at + 1 :]}
            for e, at in members
            if len(e["loc"]) > at + 1 or e["type"] not in _WRONG_TYPE
        ]
        if deeper:
            result.extend(deeper)
            continue
        wanted = list(dict.fromkeys(_WRONG_TYPE[e["type"]] for e, _ in members))
        first = members[0][0]
        msg = f"expected {' or '.join(wanted)}, got {_shown(first.get('input'))}"
        result.append({"type": "union_types", "loc": item, "msg": msg, "input": first.get("input")})
    return result


def _union_tag_at(root: type[BaseModel], loc: Sequence[str | int]) -> int | None:
    """The index in ``loc`` of a union member's tag, or None when the path crosses no union."""
    current: Any = root
    for i, part in enumerate(loc):
        current = _strip_optional(current)
        if typing.get_origin(current) is typing.Annotated:
            current = typing.get_args(current)[0]
        if isinstance(current, types.UnionType) or typing.get_origin(current) is typing.Union:
            return i if isinstance(part, str) else None
        if isinstance(part, int):
            current = _unwrap(current, list)
        elif isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return None
            current = field.annotation
        else:
            current = _unwrap(current, dict)
    return None
