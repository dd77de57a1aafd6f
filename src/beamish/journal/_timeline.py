"""What a run did, step by step, read back from the journal: ``beamish show`` and the dashboard.

A run's steps are in the ``steps`` table; what happened *to* them (replayed after a restart, a
divergence that discarded the recorded tail, a loop nudge) is in the events. This module joins the
two into one :class:`Timeline` of plain data (``to_json``), so every reader draws the same facts.
Arguments, results and errors are redacted; :meth:`Timeline.to_json` shortens them unless asked for
the full text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from beamish._redact import redact, redact_text
from beamish.journal._records import Run, Step

#: How long a shortened value may be (``--full`` shows it all).
SHORT = 160
_MARK_EVENTS = ("step.replayed", "step.divergence", "step.reconciled", "run.started")


@dataclass(frozen=True)
class StepView:
    """One step as a person reads it: what was called, with what, what came back, what it cost."""

    seq: int
    kind: str
    name: str
    phase: str
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0
    cost_usd: float = 0.0
    arguments: Any = None
    result: Any = None
    error: str | None = None
    effect: str | None = None
    idempotency_key: str | None = None
    latency_s: float | None = None
    marks: tuple[str, ...] = ()

    def to_json(self, *, full: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seq": self.seq,
            "kind": self.kind,
            "name": self.name,
            "phase": self.phase,
            "marks": list(self.marks),
            "latency_s": None if self.latency_s is None else round(self.latency_s, 4),
            "cost_usd": self.cost_usd,
        }
        if self.kind in ("llm", "compact"):
            data.update(
                model=self.model,
                tokens={
                    "in": self.tokens_in,
                    "out": self.tokens_out,
                    "cache_read": self.cache_read,
                    "cache_write": self.cache_write,
                },
            )
        data.update(
            arguments=shorten(self.arguments, full),
            result=shorten(self.result, full),
            error=self.error if full or self.error is None else shorten(self.error, False),
            effect=self.effect,
            idempotency_key=self.idempotency_key,
        )
        return data


@dataclass(frozen=True)
class Timeline:
    """A run, its steps in order, and the events about it."""

    run: Run
    steps: list[StepView] = field(default_factory=list)

    @property
    def error(self) -> str | None:
        """The run's exit reason in full (a crash's message and traceback), redacted."""
        reason = self.run.reason
        if reason is None or reason.kind == "normal":
            return None
        fields = {k: v for k, v in reason.to_json().items() if k not in ("v", "kind") and v not in (None, "")}
        trace = fields.pop("traceback", None)
        main = next((str(fields.pop(k)) for k in ("error", "message", "detail") if k in fields), None)
        extras = ", ".join(f"{k}={v}" for k, v in fields.items())
        first, _, rest = (main or extras).partition("\n")
        text = f"{reason.kind}: {first}" if first else reason.kind
        if main is not None and extras:
            text += f" ({extras})"
        text += f"\n{rest}" if rest else ""
        if isinstance(trace, str) and trace.strip() != (main or "").strip():
            text += f"\n{trace.rstrip()}"
        return redact_text(text)

    def to_json(self, *, full: bool = False) -> dict[str, Any]:
        run = self.run
        return {
            "run_id": run.run_id,
            "agent": run.agent,
            "status": run.status,
            "task": redact(run.input),
            "output": redact(run.output),
            "reason": None if run.reason is None else redact(run.reason.to_json()),
            "error": self.error,
            "cost_usd": run.spend_usd,
            "steps_cost_usd": round(sum(s.cost_usd for s in self.steps), 9),
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "version": run.meta.get("agent_version"),
            "steps": [s.to_json(full=full) for s in self.steps],
        }


def run_json(run: Run) -> dict[str, Any]:
    """One run as ``beamish runs --json`` prints it."""
    return {
        "run_id": run.run_id,
        "agent": run.agent,
        "status": run.status,
        "spend_usd": run.spend_usd,
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "reason": None if run.reason is None else redact(run.reason.to_json()),
    }


async def run_timeline(store: Any, run_id: str) -> Timeline:
    """The :class:`Timeline` of ``run_id`` (:class:`~beamish.errors.RunNotFound` when there is none)."""
    run = await store.get_run(run_id)
    steps: list[Step] = await store.steps(run_id)
    events = [
        event for _eid, event in await store.events(0, limit=10_000, kinds=_MARK_EVENTS, subject=run_id)
    ]
    marks = _marks(events)
    starts = sorted(e.at for e in events if e.kind == "run.started")
    views = []
    previous: float | None = None
    for step in steps:
        begun = _began(step, previous, starts)
        views.append(_view(step, marks.get(step.seq, ()), begun))
        previous = step.finished_at if step.finished_at is not None else previous
    return Timeline(run, views)


def _began(step: Step, previous: float | None, starts: list[float]) -> float:
    """When the step's work began. A step journaled once (a model call, a read) is written when it
    ends, so its start is the end of the step before it, or of the run's latest start before it."""
    if step.finished_at is None or step.started_at < step.finished_at:
        return step.started_at
    candidates = [t for t in (previous, *starts) if t is not None and t <= step.finished_at]
    return max(candidates) if candidates else step.started_at


def _marks(events: list[Any]) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = {}
    for event in events:
        data = event.data
        if event.kind == "step.replayed":
            for seq in range(int(data.get("from_seq", 0)), int(data.get("to_seq", -1)) + 1):
                found.setdefault(seq, []).append("replayed")
        elif event.kind == "step.divergence" and "seq" in data:
            found.setdefault(int(data["seq"]), []).append("diverged")
        elif event.kind == "step.reconciled" and "seq" in data:
            found.setdefault(int(data["seq"]), []).append("reconciled")
    return {seq: tuple(dict.fromkeys(m)) for seq, m in found.items()}


def _view(step: Step, marks: tuple[str, ...], began: float) -> StepView:
    latency = None if step.finished_at is None else max(0.0, step.finished_at - began)
    if step.kind == "signal" and step.name == "nudge":
        marks = (*marks, "nudged")
    error = _error_text(step.error)
    if step.kind == "llm":
        response = step.response if isinstance(step.response, dict) else {}
        usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
        assert isinstance(usage, dict)
        calls = response.get("tool_calls") or []
        result: Any = response.get("text") or None
        if calls:
            result = {
                "text": result,
                "tool_calls": [
                    {"name": c.get("name"), "arguments": c.get("arguments")}
                    for c in calls
                    if isinstance(c, dict)
                ],
            }
        return StepView(
            step.seq,
            step.kind,
            step.name,
            step.phase,
            model=str(response.get("model") or step.name),
            tokens_in=int(usage.get("input_tokens", step.tokens_in)),
            tokens_out=int(usage.get("output_tokens", step.tokens_out)),
            cache_read=int(usage.get("cache_read_tokens", 0)),
            cache_write=int(usage.get("cache_write_tokens", 0)),
            cost_usd=step.cost_usd,
            result=redact(result),
            error=error,
            latency_s=latency,
            marks=marks,
        )
    request = step.request if isinstance(step.request, dict) else {}
    if isinstance(request.get("skeleton"), dict):  # a hashed request's summary (see journal._reqhash)
        request = request["skeleton"]
    if step.kind == "compact":
        return _compact_view(step, request, marks, error, latency)
    arguments = request.get("args", request.get("nudge", step.request))
    return StepView(
        step.seq,
        step.kind,
        step.name,
        step.phase,
        cost_usd=step.cost_usd,
        arguments=redact(arguments),
        result=redact(_tool_result(step.response)),
        error=error,
        effect=step.effect,
        idempotency_key=step.idempotency_key,
        latency_s=latency,
        marks=marks,
    )


def _compact_view(
    step: Step, request: dict[str, Any], marks: tuple[str, ...], error: str | None, latency: float | None
) -> StepView:
    """A compaction (``agent._compaction``): what it folded, and the summary it wrote (or what a
    trim dropped), priced like the model call it was."""
    response = step.response if isinstance(step.response, dict) else {}
    usage = response.get("usage") if isinstance(response.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    keys = ("folded", "pinned", "chunk", "lines", "tokens_before")
    arguments = {k: request[k] for k in keys if k in request}
    result = response.get("text") if "text" in response else response or None
    model = response.get("model") or (None if step.name == "trim" else step.name)
    return StepView(
        step.seq,
        step.kind,
        step.name,
        step.phase,
        model=None if model is None else str(model),
        tokens_in=int(usage.get("input_tokens", step.tokens_in)),
        tokens_out=int(usage.get("output_tokens", step.tokens_out)),
        cost_usd=step.cost_usd,
        arguments=arguments,
        result=redact(result),
        error=error,
        latency_s=latency,
        marks=marks,
    )


def _tool_result(response: Any) -> Any:
    """A tool step stores the tool message it produced; the reader wants its text."""
    if isinstance(response, dict) and "text" in response and ("role" in response or "is_error" in response):
        return response["text"]
    return response


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, dict):
        head = f"{error.get('type', 'Error')}: {error.get('message', '')}".strip()
        trace = error.get("traceback")
        return redact_text(f"{head}\n{trace}" if trace else head)
    return redact_text(str(error))


def shorten(value: Any, full: bool) -> Any:
    """``value`` as is with ``full``; else as text of at most :data:`SHORT` characters."""
    if full or value is None:
        return value
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"
