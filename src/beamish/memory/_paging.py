"""Optional paging for large graphs (off by default, so the nine tools stay the reference's).

With a page size, ``read_graph``, ``search_nodes`` and ``open_nodes`` take an optional ``cursor``
and return at most that many entities plus a ``nextCursor`` while more remain, so a client never
gets a 50k-token answer in one piece. Each relation is sent exactly once across the pages: with
the page holding its ``from`` entity, else the page holding its ``to`` entity, else (neither end in
the result) on the last page.
"""

from __future__ import annotations

import copy
from typing import Any

PAGED_TOOLS = frozenset({"read_graph", "search_nodes", "open_nodes"})

_CURSOR = {"type": "string", "description": "Where to continue: the nextCursor of the previous page"}


def paged_definitions(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool list with ``cursor`` in and ``nextCursor`` out for the paged tools."""
    out = copy.deepcopy(tools)
    for tool in out:
        if tool["name"] in PAGED_TOOLS:
            tool["inputSchema"]["properties"]["cursor"] = dict(_CURSOR)
            tool["outputSchema"]["properties"]["nextCursor"] = {"type": "string"}
    return out


class CursorError(ValueError):
    """The cursor argument is not one this server handed out."""


def take_cursor(arguments: dict[str, Any] | None) -> tuple[dict[str, Any] | None, int]:
    """Split ``cursor`` off the arguments; returns the rest and the page's first entity index."""
    if not arguments or "cursor" not in arguments:
        return arguments, 0
    rest = dict(arguments)
    cursor = rest.pop("cursor")
    if not isinstance(cursor, str) or not cursor.isdigit():
        raise CursorError(f"Invalid cursor: {cursor!r}")
    return rest, int(cursor)


def page(result: dict[str, Any], offset: int, size: int) -> dict[str, Any]:
    """One page of a graph result (entities and relations as the tools return them)."""
    entities = result["entities"]
    if offset > len(entities):
        raise CursorError(f"Invalid cursor: {offset} is past the end")
    chosen = entities[offset : offset + size]
    names_here = {e["name"] for e in chosen}
    names_all = {e["name"] for e in entities}
    last = offset + size >= len(entities)
    relations = []
    for r in result["relations"]:
        if r["from"] in names_all:
            home = r["from"] in names_here
        elif r["to"] in names_all:
            home = r["to"] in names_here
        else:
            home = last
        if home:
            relations.append(r)
    out: dict[str, Any] = {"entities": chosen, "relations": relations}
    if not last:
        out["nextCursor"] = str(offset + size)
    return out
