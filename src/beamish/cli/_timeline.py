"""``beamish show RUN`` as text: one line per step, then the run's end (status, error, output, cost)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.text import Text

from beamish.cli._output import console
from beamish.journal._timeline import StepView, Timeline, shorten

_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "paused": "bold magenta",
    "needs_attention": "bold red",
}


def print_timeline(timeline: Timeline, *, full: bool = False) -> None:
    data = timeline.to_json(full=full)
    run = timeline.run
    head = Text(f"run {run.run_id}  agent {run.agent}  ")
    head.append(run.status, style=_STATUS_STYLE.get(run.status, "yellow"))
    when = datetime.fromtimestamp(run.created_at).strftime("%Y-%m-%d %H:%M:%S")
    head.append(f"  ${run.spend_usd:.4f}  {when}")
    if data["version"] is not None:
        head.append(f"  v{data['version']}")
    deadline = run.meta.get("deadline")
    if isinstance(deadline, int | float) and not isinstance(deadline, bool):
        head.append(f"  deadline {datetime.fromtimestamp(deadline).strftime('%Y-%m-%d %H:%M:%S')}")
    console.print(head)
    console.print(Text("task: ", style="bold") + Text(_text(data["task"], full)))
    if not timeline.steps:
        console.print("  (no steps recorded)", style="dim")
    for step in timeline.steps:
        console.print(_step_line(step, full))
    error = timeline.error
    if error is not None:
        shown = error if full else error.splitlines()[0] if error else error
        console.print(Text("error: ", style="bold red") + Text(str(shown)))
        if not full and error.count("\n"):
            console.print("  (--full for the whole error)", style="dim")
    if run.output is not None:
        console.print(Text("output: ", style="bold") + Text(_text(data["output"], full)))
    console.print(f"total ${run.spend_usd:.6f} over {len(timeline.steps)} steps")


def _step_line(step: StepView, full: bool) -> Text:
    line = Text(f"  #{step.seq:<3} ")
    line.append(f"{step.kind:<6}", style="cyan")
    if step.kind == "compact":
        line.append(f" {step.name}({_text(step.arguments, full)})")
        if step.model is not None:
            tokens = f"in {step.tokens_in} out {step.tokens_out}"
            line.append(f"  {tokens}  ${step.cost_usd:.6f}", style="dim")
        if step.result is not None:
            line.append(f"  → {_text(shorten(step.result, full), full)}")
    elif step.kind == "llm":
        line.append(f" {step.model}")
        tokens = f"in {step.tokens_in} out {step.tokens_out}"
        if step.cache_read or step.cache_write:
            tokens += f" cache {step.cache_read}r/{step.cache_write}w"
        line.append(f"  {tokens}  ${step.cost_usd:.6f}", style="dim")
        if isinstance(step.result, dict) and step.result.get("tool_calls"):
            calls = ", ".join(
                f"{c.get('name')}({_text(c.get('arguments'), full)})" for c in step.result["tool_calls"]
            )
            line.append(f"  → calls {calls}")
        elif step.result is not None:
            line.append(f"  → {_text(shorten(step.result, full), full)}")
    else:
        line.append(f" {step.name}({_text(shorten(step.arguments, full), full)})")
        if step.result is not None:
            line.append(f" → {_text(shorten(step.result, full), full)}")
        if step.effect is not None:
            line.append(f"  [{step.effect}] key {step.idempotency_key}", style="dim")
    if step.phase != "done":
        line.append(f"  {step.phase}", style="yellow")
    if step.error is not None:
        message = step.error if full else step.error.splitlines()[0]
        line.append(f"  error: {message}", style="red")
    if step.latency_s is not None:
        line.append(f"  {step.latency_s * 1000:.0f} ms", style="dim")
    for mark in step.marks:
        line.append(f"  {mark}", style="bold yellow")
    return line


def _text(value: Any, full: bool) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return str(shorten(text, full))
