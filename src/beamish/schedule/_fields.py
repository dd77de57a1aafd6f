"""Cron expressions checked field by field, so a typo is named where it is (``minute 61 is out of
range 0-59``) instead of "not a cron expression".

croniter accepts or refuses a whole expression; a person editing ``beamish.toml`` needs to know which
of the five fields is wrong and why. What this module accepts is what croniter accepts for five
fields (numbers, names, lists, ranges, steps, ``L`` and ``#``); croniter stays the final word.
"""

from __future__ import annotations

import re

from croniter import croniter  # type: ignore[import-untyped,unused-ignore]

#: The five fields: name, lowest value, highest value, names allowed in place of numbers.
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("weekday", 0, 7, _DAYS),
)
ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_NTH = re.compile(r"^([0-7]|[a-z]{3})(#[1-5]|l)$")


def cron_problems(expression: str) -> list[str]:
    """Every problem of a five-field cron expression, one sentence each; empty when it is valid."""
    text = expression.strip()
    if text.lower() in ALIASES:
        return []
    parts = text.split()
    if len(parts) != 5:
        names = " ".join(f[0] for f in FIELDS)
        return [f"expected 5 fields ({names}), got {expression!r}"]
    problems: list[str] = []
    for value, (name, low, high, words) in zip(parts, FIELDS, strict=True):
        for item in value.lower().split(","):
            problem = _item_problem(item, name, low, high, words)
            if problem is not None:
                problems.append(problem)
    if not problems and not croniter.is_valid(text):
        problems.append(f"croniter refuses {expression!r}")
    return problems


def _item_problem(item: str, name: str, low: int, high: int, words: tuple[str, ...]) -> str | None:
    if not item:
        return f"{name} has an empty list item"
    if item in ("*", "?") or (item == "l" and name == "day"):
        return None
    if name == "weekday" and _NTH.match(item):
        return _value_problem(_NTH.match(item).group(1), name, low, high, words)  # type: ignore[union-attr]
    base, slash, step = item.partition("/")
    if slash:
        if not step.isdigit() or int(step) < 1:
            return f"{name} step {step!r} in {item!r} must be a whole number of at least 1"
        if base == "*":
            return None
    first, dash, last = base.partition("-")
    for part in (first, last) if dash else (first,):
        problem = _value_problem(part, name, low, high, words)
        if problem is not None:
            return problem
    if dash and _number(first, words, low) > _number(last, words, low):
        return f"{name} range {base!r} goes backwards (write the lower bound first)"
    return None


def _value_problem(part: str, name: str, low: int, high: int, words: tuple[str, ...]) -> str | None:
    if part.isdigit():
        value = int(part)
        if not low <= value <= high:
            return f"{name} {value} is out of range {low}-{high}"
        return None
    if part in words:
        return None
    named = f" or a name ({', '.join(words)})" if words else ""
    return f"{name} {part!r} is not a number {low}-{high}{named}"


def _number(part: str, words: tuple[str, ...], low: int) -> int:
    return int(part) if part.isdigit() else words.index(part) + (1 if low == 1 else 0)
