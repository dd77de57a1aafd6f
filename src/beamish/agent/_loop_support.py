"""Small pure helpers of the agent loop, kept apart so the loop module reads as the loop."""

from __future__ import annotations

import json
from typing import Any

from beamish._exits import Crashed, ExitReason
from beamish.agent._messages import ModelResponse
from beamish.journal._replay import StepResult
from beamish.telemetry._otel import ChatRecord


def fill_chat(record: ChatRecord, response: ModelResponse, result: StepResult) -> None:
    """Copy a model step's usage, cost and answer onto its telemetry record (a replayed step too,
    marked as such, so a trace shows what a restarted run did not pay again)."""
    usage = response.usage
    record.input_tokens = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    record.output_tokens = usage.output_tokens
    record.cache_read_tokens = usage.cache_read_tokens
    record.cache_write_tokens = usage.cache_write_tokens
    record.cost_usd = result.cost_usd
    record.response_model = response.model
    record.finish_reasons = [response.stop_reason]
    record.output = response.as_message().to_json()
    record.replayed = result.replayed


def task_text(value: Any) -> str:
    """The first user turn of a run: its input as text (``{"task": …}`` unwrapped, else JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("task"), str):
        return str(value["task"])
    return json.dumps(value, sort_keys=True)


def exit_reason_of(value: Any) -> ExitReason:
    """A hook's ``PauseRun``/``AbortRun`` reason as an exit reason (plain text becomes ``Crashed``)."""
    return value if isinstance(value, ExitReason) else Crashed(str(value))
