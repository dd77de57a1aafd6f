"""The nine tools' wire surface, written out by hand, and argument checking that speaks as zod does.

``tools/list`` must match the reference byte for byte, so the schemas are data here, not derived
from type hints. Arguments are checked the way the reference's zod schemas check them: unknown
keys are stripped, every problem is reported in schema order with its path, and the message is
the one the reference's SDK builds (``MCP error -32602: Input validation error: …``).
"""

from __future__ import annotations

import math
from typing import Any

_SCHEMA = "http://json-schema.org/draft-07/schema#"

#: The resource holding the whole graph, as the reference names it.
RESOURCE_URI = "memory://knowledge-graph"

# A tiny schema language: "string", ("array", item), ("object", ((key, spec, description), ...)).
Spec = Any

_ENTITY_FIELDS = (
    ("name", "string", "The name of the entity"),
    ("entityType", "string", "The type of the entity"),
    (
        "observations",
        ("array", "string"),
        "An array of observation contents associated with the entity",
    ),
)
_RELATION_FIELDS = (
    ("from", "string", "The name of the entity where the relation starts"),
    ("to", "string", "The name of the entity where the relation ends"),
    ("relationType", "string", "The type of the relation"),
)
ENTITY: Spec = ("object", _ENTITY_FIELDS)
RELATION: Spec = ("object", _RELATION_FIELDS)

# name -> (title, description, input fields, output fields, annotations (ro, destructive, idempotent))
_TOOLS: dict[str, tuple[str, str, tuple[Any, ...], tuple[Any, ...], tuple[bool, bool, bool]]] = {
    "create_entities": (
        "Create Entities",
        "Create multiple new entities in the knowledge graph",
        (("entities", ("array", ENTITY), None),),
        (("entities", ("array", ENTITY), None),),
        (False, False, False),
    ),
    "create_relations": (
        "Create Relations",
        "Create multiple new relations between entities in the knowledge graph."
        " Relations should be in active voice",
        (("relations", ("array", RELATION), None),),
        (("relations", ("array", RELATION), None),),
        (False, False, False),
    ),
    "add_observations": (
        "Add Observations",
        "Add new observations to existing entities in the knowledge graph",
        (
            (
                "observations",
                (
                    "array",
                    (
                        "object",
                        (
                            ("entityName", "string", "The name of the entity to add the observations to"),
                            ("contents", ("array", "string"), "An array of observation contents to add"),
                        ),
                    ),
                ),
                None,
            ),
        ),
        (
            (
                "results",
                (
                    "array",
                    (
                        "object",
                        (("entityName", "string", None), ("addedObservations", ("array", "string"), None)),
                    ),
                ),
                None,
            ),
        ),
        (False, False, False),
    ),
    "delete_entities": (
        "Delete Entities",
        "Delete multiple entities and their associated relations from the knowledge graph",
        (("entityNames", ("array", "string"), "An array of entity names to delete"),),
        (("success", "boolean", None), ("message", "string", None)),
        (False, True, True),
    ),
    "delete_observations": (
        "Delete Observations",
        "Delete specific observations from entities in the knowledge graph",
        (
            (
                "deletions",
                (
                    "array",
                    (
                        "object",
                        (
                            ("entityName", "string", "The name of the entity containing the observations"),
                            ("observations", ("array", "string"), "An array of observations to delete"),
                        ),
                    ),
                ),
                None,
            ),
        ),
        (("success", "boolean", None), ("message", "string", None)),
        (False, True, True),
    ),
    "delete_relations": (
        "Delete Relations",
        "Delete multiple relations from the knowledge graph",
        (("relations", ("array", RELATION), "An array of relations to delete"),),
        (("success", "boolean", None), ("message", "string", None)),
        (False, True, True),
    ),
    "read_graph": (
        "Read Graph",
        "Read the entire knowledge graph",
        (),
        (("entities", ("array", ENTITY), None), ("relations", ("array", RELATION), None)),
        (True, False, True),
    ),
    "search_nodes": (
        "Search Nodes",
        "Search for nodes in the knowledge graph based on a query",
        (
            (
                "query",
                "string",
                "The search query to match against entity names, types, and observation content",
            ),
        ),
        (("entities", ("array", ENTITY), None), ("relations", ("array", RELATION), None)),
        (True, False, True),
    ),
    "open_nodes": (
        "Open Nodes",
        "Open specific nodes in the knowledge graph by their names",
        (("names", ("array", "string"), "An array of entity names to retrieve"),),
        (("entities", ("array", ENTITY), None), ("relations", ("array", RELATION), None)),
        (True, False, True),
    ),
}

TOOL_NAMES = tuple(_TOOLS)
MUTATING = frozenset({"create_entities", "create_relations", "add_observations"}) | frozenset(
    n for n in _TOOLS if n.startswith("delete_")
)


def _json_schema(spec: Spec, *, closed: bool) -> dict[str, Any]:
    if isinstance(spec, str):
        return {"type": spec}
    if spec[0] == "array":
        return {"type": "array", "items": _json_schema(spec[1], closed=closed)}
    return _object_schema(spec[1], closed=closed)


def _object_schema(fields: tuple[Any, ...], *, closed: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for key, spec, description in fields:
        schema = _json_schema(spec, closed=closed)
        if description is not None:
            schema["description"] = description
        properties[key] = schema
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if fields:
        out["required"] = [key for key, _, _ in fields]
    if closed:
        out["additionalProperties"] = False
    return out


def _top(fields: tuple[Any, ...], *, closed: bool) -> dict[str, Any]:
    return {"$schema": _SCHEMA, **_object_schema(fields, closed=closed)}


def tool_definitions() -> list[dict[str, Any]]:
    """The ``tools`` array of ``tools/list``, key for key as the reference sends it."""
    tools = []
    for name, (title, description, inputs, outputs, (read_only, destructive, idempotent)) in _TOOLS.items():
        tools.append(
            {
                "name": name,
                "title": title,
                "description": description,
                "inputSchema": _top(inputs, closed=False),
                "annotations": {
                    "readOnlyHint": read_only,
                    "destructiveHint": destructive,
                    "idempotentHint": idempotent,
                    "openWorldHint": False,
                },
                "execution": {"taskSupport": "forbidden"},
                "outputSchema": _top(outputs, closed=True),
            }
        )
    return tools


# -- checking arguments the way zod v4 does ---------------------------------------------------------


def _received(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _dot_path(path: list[str | int]) -> str:
    out = ""
    for i, seg in enumerate(path):
        if i == 0:
            out = str(seg)
        elif isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}"
    return out


class _Missing:
    pass


_MISSING = _Missing()


def _check(spec: Spec, value: Any, path: list[str | int], issues: list[str]) -> Any:
    expected = spec if isinstance(spec, str) else spec[0]
    ok = {
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
        "object": isinstance(value, dict),
    }[expected]
    if not ok:
        received = "undefined" if value is _MISSING else _received(value)
        message = f"Invalid input: expected {expected}, received {received}"
        issues.append(f"{message} at {_dot_path(path)}" if path else message)
        return None
    if expected == "array":
        return [_check(spec[1], item, [*path, i], issues) for i, item in enumerate(value)]
    if expected == "object":
        return {key: _check(sub, value.get(key, _MISSING), [*path, key], issues) for key, sub, _ in spec[1]}
    return value


class ArgumentError(ValueError):
    """Arguments do not fit a tool's input schema; the message is the reference's, verbatim."""


def check_arguments(tool: str, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """The arguments with unknown keys stripped, or :class:`ArgumentError` naming every problem."""
    if tool not in _TOOLS:
        raise ArgumentError(f"MCP error -32602: Tool {tool} not found")
    issues: list[str] = []
    cleaned = _check(("object", _TOOLS[tool][2]), {} if arguments is None else arguments, [], issues)
    if issues:
        raise ArgumentError(
            f"MCP error -32602: Input validation error: Invalid arguments for tool {tool}: "
            + "\n".join(issues)
        )
    assert isinstance(cleaned, dict)
    return cleaned
