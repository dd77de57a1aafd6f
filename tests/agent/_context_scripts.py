"""Long scripted conversations on a small context window, for the context tests and the benchmark."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ._scripts import call


def long_turns(n: int, *, hold_at: int | None = None, words: int = 24) -> list[dict[str, Any]]:
    """``n`` turns that each look one topic up (with some text, so the conversation grows), then a
    final answer quoting the last tool result. Turn ``hold_at`` looks up ``hold-here``."""
    turns: list[dict[str, Any]] = []
    filler = " ".join(f"note{i % 10}" for i in range(words))
    for i in range(n):
        topic = "hold-here" if i == hold_at else f"topic-{i:04d}"
        turns.append(
            {"text": f"Step {i}: checking {topic}. {filler}", "tool_calls": [call("lookup", topic=topic)]}
        )
    turns.append({"text": "Done: {last_tool}."})
    return turns


def write_long_script(
    directory: Path,
    name: str,
    n: int,
    *,
    window: int | None,
    hold_at: int | None = None,
    counter_scale: float = 1.0,
) -> Path:
    path = directory / f"{name}.json"
    data: dict[str, Any] = {
        "turns": long_turns(n, hold_at=hold_at),
        "call_log": str(directory / f"{name}.calls.jsonl"),
        "summary": "Earlier turns looked up {chars} characters' worth of topics.",
    }
    if window is not None:
        data["context_window"] = window
    if counter_scale != 1.0:
        data["counter_scale"] = counter_scale  # the model's own count falls short of what it bills
    path.write_text(json.dumps(data))
    return path
