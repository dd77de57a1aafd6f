"""Script files for the scripted model, written per test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def write_script(
    directory: Path,
    name: str,
    turns: list[dict[str, Any]] | None = None,
    *,
    scripts: Any = None,
    log: bool = True,
) -> Path:
    """Write a JSON script (with a call log next to it) and return its path."""
    path = directory / f"{name}.json"
    data: dict[str, Any] = {"scripts": scripts} if scripts is not None else {"turns": turns}
    if log:
        data["call_log"] = str(directory / f"{name}.calls.jsonl")
    path.write_text(json.dumps(data, indent=1))
    return path


def calls_made(script: Path) -> list[dict[str, Any]]:
    log = script.with_name(script.stem + ".calls.jsonl")
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


#: Ten model turns with tool calls of every effect; the final answer is the tenth.
TEN_STEPS = [
    {"text": "Looking things up.", "tool_calls": [call("lookup", topic="market")]},
    {"tool_calls": [call("save_note", note="market is up")]},
    {"text": "Announcing.", "tool_calls": [call("publish", text="launch day")]},
    {"tool_calls": [call("lookup", topic="competitors")]},
    {"tool_calls": [call("lookup", topic="pricing")]},
    {"tool_calls": [call("lookup", topic="hold-here")]},
    {"tool_calls": [call("lookup", topic="press")]},
    {"tool_calls": [call("save_note", note="press is keen")]},
    {"tool_calls": [call("lookup", topic="summary")]},
    {"text": "Final report for: {task}. Launch published once; notes saved."},
]
