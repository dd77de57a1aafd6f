"""``consult``: one agent asks another and waits for the answer, as a journaled step of its run.

The question becomes a run of the consulted agent whose run_id is the step's idempotency key, so a
restarted asker that re-executes the step finds the same run — asked once, answered once — and a
finished consult replays from the journal. The chain of askers travels in the run's meta
(``consult_path``): asking anyone already on it (A→B→A) is refused at once with ``ConsultCycle``.
The deadline is absolute (from the step's first attempt, so a restart does not extend it); past it,
the *step* fails with ``ConsultDeadline`` — the model reads the error, the agent lives on — and a late
answer is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from beamish._clock import Clock
from beamish._exceptions import ConsultCycle, ConsultDeadline
from beamish.agent._messages import ToolCall, ToolSchema
from beamish.agent._results import FINAL_STATUSES
from beamish.journal import Run
from beamish.journal._replay import RunJournal, StepResult

if TYPE_CHECKING:
    from beamish.agent._loop import RunLoop

Reply = Callable[[str, bool], StepResult]
#: Told the name of an agent with new work (a node wakes it at once instead of at its next poll).
Wake = Callable[[str], None]


def consult_schema(default_deadline_s: float, allowed: Sequence[str] | None = None) -> ToolSchema:
    agent: dict[str, Any] = {"type": "string", "description": "The agent to ask, by name."}
    if allowed is not None:
        agent["enum"] = list(allowed)
    return ToolSchema(
        name="consult",
        description=(
            "Ask another agent a question and wait for its answer. Use it for what another agent "
            "knows or decides; do not consult an agent that is already consulting you."
        ),
        parameters={
            "type": "object",
            "properties": {
                "agent": agent,
                "question": {"type": "string", "description": "The question, self-contained."},
                "deadline_s": {
                    "type": "number",
                    "description": "Seconds to wait for the answer.",
                    "default": default_deadline_s,
                },
            },
            "required": ["agent", "question"],
        },
    )


class ConsultTool:
    """The ``consult`` tool as the loop sees it (the work is in :class:`Consulter`)."""

    name = "consult"
    effect = "idempotent"

    def __init__(self, default_deadline_s: float, allowed: Sequence[str] | None = None) -> None:
        self.default_deadline_s = default_deadline_s
        self.allowed = allowed

    def schema(self) -> ToolSchema:
        return consult_schema(self.default_deadline_s, self.allowed)


def consult_run_id(key: str) -> str:
    """The run_id of the question asked by the consult step whose idempotency key is ``key`` (the
    journal's: a diverged run asking afresh gets a new consulted run, not the old question's answer)."""
    return f"consult:{key}"


class Consulter:
    """Performs consult steps against the store; ``wake`` (optional) nudges the consulted agent."""

    def __init__(self, store: Any, clock: Clock, *, wake: Wake | None = None, poll_s: float = 0.02) -> None:
        self.store = store
        self.clock = clock
        self.wake = wake
        self.poll_s = poll_s

    async def step(
        self, loop: RunLoop, run: Run, journal: RunJournal, seq: int, call: ToolCall, reply: Reply
    ) -> StepResult:
        asker = loop.spec.name
        target = call.arguments.get("agent")
        question = call.arguments.get("question")
        deadline_s = call.arguments.get("deadline_s", loop.spec.consult_deadline_s)
        path = [str(p) for p in run.meta.get("consult_path", [])] + [asker]
        problem: str | None = None
        if not isinstance(target, str) or not target or not isinstance(question, str):
            problem = "consult needs 'agent' (a name) and 'question' (text)"
        elif isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float) or deadline_s <= 0:
            problem = f"consult deadline_s must be a number > 0, got {deadline_s!r}"
        elif loop.spec.consults is not None and target not in loop.spec.consults:
            allowed = ", ".join(loop.spec.consults) or "none"
            problem = f"agent {asker!r} may not consult {target!r} (allowed: {allowed})"
        elif target in path:
            chain = " → ".join([*path, target])
            problem = str(ConsultCycle(f"consult refused: {chain} would ask {target!r} again (a cycle)"))
        if problem is not None:
            refused = reply(problem, True)

            async def refuse() -> StepResult:
                return refused

            request = {"refused": "consult", "args": call.arguments, "why": problem}
            return await journal.model_step(seq, request, refuse, kind="consult", name="consult")
        assert isinstance(target, str) and isinstance(question, str)
        args = {"agent": target, "question": question, "deadline_s": float(deadline_s)}
        first = journal.recorded(seq)
        started = first.started_at if first is not None else self.clock.time()
        deadline_at = started + float(deadline_s)

        async def ask(key: str) -> StepResult:
            answer, ok = await self.ask(key, run.run_id, asker, target, question, path, deadline_at)
            return reply(answer, not ok)

        return await journal.effect_step(seq, "consult", args, "idempotent", ask, kind="consult")

    async def ask(
        self,
        key: str,
        run_id: str,
        asker: str,
        target: str,
        question: str,
        path: list[str],
        deadline_at: float,
    ) -> tuple[str, bool]:
        """Create (once) the consulted run and wait for it until ``deadline_at``: (text, succeeded)."""
        rid = consult_run_id(key)
        meta = {"consult_path": path, "asked_by": run_id, "deadline_at": deadline_at}
        await self.store.create_run(target, question, run_id=rid, meta=meta)
        if self.wake is not None:
            self.wake(target)
        delay = self.poll_s
        while True:
            found = await self.store.get_run(rid)
            if found.status in FINAL_STATUSES:
                if found.status == "succeeded":
                    return str(found.output), True
                why = found.reason.to_json() if found.reason is not None else {}
                return (
                    f"consult of {target!r} ended {found.status}: {why.get('error') or why.get('kind', '')}",
                    False,
                )
            left = deadline_at - self.clock.time()
            if left <= 0:
                error = ConsultDeadline(f"{target!r} did not answer {asker!r} within the consult deadline")
                return str(error), False
            await self.clock.sleep(min(delay, left))
            delay = min(delay * 1.5, 0.25)
