"""The journaled LLM loop: messages → model call → tool calls → … → final answer.

Every model call and every tool call is a step of the run's journal (:class:`RunJournal`), numbered
in order, so a restarted agent re-executes the loop from the start and each step it has already
taken comes back from the journal instead of being paid for again: the model is not called, a
``once`` tool is not run twice. The first step with no record is where the run continues live.

Refused calls (malformed arguments, a tool the agent was not given, bad arguments) are steps too:
the model sees the error as the tool's result and may correct itself, and the numbering of later
steps stays the same on replay.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import (
    AbortRun,
    AwaitHuman,
    DeadlineMissed,
    Fenced,
    ModelError,
    ModelRejected,
    ModelUnavailable,
    PauseRun,
    ToolError,
    UnknownOutcome,
)
from beamish._exits import Crashed, ExitReason, Looping
from beamish.agent._approval import AskHumanTool
from beamish.agent._breaker import Breaker
from beamish.agent._compaction import ContextKeeper
from beamish.agent._deadline import deadline_of, missed, missed_event
from beamish.agent._fallback import Fallbacks, Guard
from beamish.agent._gate_step import is_gated, pass_gate
from beamish.agent._hooks import AgentHooks, RunInfo
from beamish.agent._loop_support import exit_reason_of, fill_chat, task_text
from beamish.agent._messages import Message, ModelRequest, ModelResponse, ToolCall
from beamish.agent._ratelimit import RateLimiter
from beamish.agent._spec import AgentSpec
from beamish.agent._tools import Tool, ToolContext, ToolSet
from beamish.agent.models._protocol import Model
from beamish.agent.models._retry import RetryPolicy, WaitKind, complete_with_retries
from beamish.journal import Lease, Run
from beamish.journal._replay import RunJournal, StepResult
from beamish.telemetry._otel import NullTelemetry

logger = logging.getLogger("beamish.agent")


#: Model calls in a run's journal (each was made live once, by some incarnation of the agent).
_LLM_STEPS = "SELECT COUNT(*) AS n FROM steps WHERE run_id = ? AND kind = 'llm' AND phase = 'done'"


@dataclass(frozen=True)
class Outcome:
    """How one execution of a run ended (``status`` as stored in the run row)."""

    status: str
    output: Any = None
    reason: ExitReason | None = None


class RunLoop:
    """Runs one agent's runs, one at a time, each to its end (or its pause)."""

    def __init__(
        self,
        *,
        spec: AgentSpec,
        model: Model,
        tools: ToolSet,
        hooks: AgentHooks,
        store: Any,
        clock: Clock,
        owner: str,
        consulter: Any = None,
        retry: RetryPolicy | None = None,
        telemetry: Any = None,
        lease: Lease | None = None,
        limiter: RateLimiter | None = None,
        fallbacks: Sequence[Model] = (),
        breaker: Breaker | None = None,
    ) -> None:
        self.spec = spec
        #: The store's provider rate limits, shared with every agent, process and node on it.
        self.limiter = limiter
        #: On a cluster, the lease this agent is held by: runs are claimed only while it is held.
        self.lease = lease
        self.model = model
        self.tools = tools
        self.hooks = hooks
        self.store = store
        self.clock = clock
        self.owner = owner
        self.consulter = consulter
        self.retry = retry or RetryPolicy()
        self._schemas = tools.schemas()
        #: The agent's models in order, each step tried on the next when one is down (``_fallback``).
        self.fallbacks = Fallbacks([model, *fallbacks], clock, breaker, emit=store.append_event)
        #: The deadline of each run in flight (epoch seconds), read from its meta when it starts.
        self._deadlines: dict[str, float] = {}
        #: ``beamish.telemetry.Telemetry`` (spans ``invoke_agent``/``chat``/``execute_tool``) or off.
        self.telemetry: Any = telemetry if telemetry is not None else NullTelemetry()

    async def execute(self, run: Run) -> Outcome:
        """Claim ``run`` (a new fencing epoch), replay its journal, finish it live, store the outcome."""
        # a run keeps the agent version it first started on (an upgrade never lands mid-run)
        first = self.spec.version is not None and "agent_version" not in run.meta

        def started(epoch: int) -> list[Event]:
            data = {"run_id": run.run_id, "agent": run.agent, "epoch": epoch}
            if self.spec.version is not None:
                data["version"] = self.spec.version
            return [Event("run.started", run.run_id, data)]

        try:  # the claim, the status, run.started and reading the journal: one transaction
            journal = await RunJournal.claim(
                self.store,
                run.run_id,
                self.owner,
                lease=self.lease,
                status="running",
                meta={"agent_version": self.spec.version} if first else None,
                events=started,
            )
        except Fenced:
            logger.warning("run %s not claimed: this node no longer holds agent %s", run.run_id, run.agent)
            return Outcome("fenced")
        epoch = journal.epoch
        deadline = deadline_of(run.meta)
        if deadline is not None:
            self._deadlines[run.run_id] = deadline
        journal.lease = self.lease
        info = RunInfo(agent=self.spec.name, run_id=run.run_id, seq=0, model=self.model.name)
        outcome: Outcome
        span = self.telemetry.invoke_agent(self.spec.name, run.run_id, model=self.model.name, task=run.input)
        try:
            with span:
                await self.hooks.before_run(info)
                output = await self._loop(run, journal)
            outcome = Outcome("succeeded", output=output)
        except AwaitHuman:
            # the gate row and the run's status were written together; the run holds nothing more
            await journal.flush()
            await self.hooks.after_run(info, "awaiting_approval")
            return Outcome("awaiting_approval")
        except PauseRun as signal:
            outcome = Outcome("paused", reason=exit_reason_of(signal.reason))
        except AbortRun as signal:
            outcome = Outcome("failed", reason=exit_reason_of(signal.reason))
        except UnknownOutcome as exc:
            # the journal parked the run as needs_attention and stored the event
            outcome = Outcome("needs_attention", reason=Crashed(exc))
        except Fenced:
            logger.warning("run %s was taken over by another owner; leaving it", run.run_id)
            return Outcome("fenced")
        except ModelUnavailable as exc:
            # an outage is a crash: by default the agent restarts after its supervisor's backoff
            # and the run resumes later; on_crash="stop"/"pause" keeps it to this run; past the
            # run's deadline it waits for a person instead
            late = missed(run.meta, self.clock.time(), f"failed ({exc})")
            outcome = self._crashed(info, exc) if late is None else self._late(late)
        except ModelError as exc:
            # the provider refused this request (a 4xx): the same request gets the same answer
            outcome = Outcome("failed", reason=Crashed(exc))
        except Exception as exc:
            outcome = self._crashed(info, exc)
        finally:
            self._deadlines.pop(run.run_id, None)
        if outcome.status in ("succeeded", "failed"):
            why = getattr(outcome.reason, "message", None) or getattr(outcome.reason, "kind", "")
            what = "answered" if outcome.status == "succeeded" else f"failed ({why})"
            late = missed(run.meta, self.clock.time(), what)
            if late is not None:
                outcome = self._late(late, outcome.output)
        await journal.flush()
        await self._store_outcome(run, epoch, journal, outcome)
        await self.hooks.after_run(info, outcome.status)
        return outcome

    def _late(self, error: Exception, output: Any = None) -> Outcome:
        """A run past its deadline: parked for a person (its answer, if any, kept), and alerted."""
        return Outcome("needs_attention", output=output, reason=Crashed(error))

    def _crashed(self, info: RunInfo, exc: Exception) -> Outcome:
        """A crash escaping the run: the agent's ``on_crash`` may keep it to the run (``stop``: the
        run fails, ``pause``: it waits for ``resume``); otherwise it propagates and the agent exits
        (``restart``, the default, or ``escalate``)."""
        decide = getattr(self.hooks, "crash_action", None)
        action = decide(info, exc) if callable(decide) else "restart"
        if action not in ("stop", "pause"):
            raise exc
        return Outcome("failed" if action == "stop" else "paused", reason=Crashed(exc))

    async def _store_outcome(self, run: Run, epoch: int, journal: RunJournal, outcome: Outcome) -> None:
        meta: dict[str, Any] = {"replayed_calls": journal.replayed_calls}

        def counted(tx: Any) -> dict[str, Any]:  # read in the outcome's own transaction
            row = tx.fetchone(_LLM_STEPS, (run.run_id,))
            meta["model_calls"] = int(row["n"]) if row else 0
            return meta

        kind = {"paused": "run.paused", "needs_attention": "run.needs_attention"}.get(
            outcome.status, "run.finished"
        )

        def finished(tx: Any) -> list[Event]:
            data: dict[str, Any] = {"run_id": run.run_id, "agent": run.agent, "status": outcome.status}
            data.update(model_calls=meta["model_calls"], replayed_calls=meta["replayed_calls"])
            if outcome.reason is not None:
                data["reason"] = outcome.reason.to_json()
            return [Event(kind, run.run_id, data)]

        # the status and its event in one transaction: whoever sees the run end sees why
        late = outcome.reason.error if isinstance(outcome.reason, Crashed) else None
        if isinstance(late, DeadlineMissed):
            await self.store.update_run(
                run.run_id, status=outcome.status, output=outcome.output, reason=outcome.reason, meta=counted,
                epoch=epoch, events=[missed_event(run.run_id, run.agent, late, self.clock.time())],
            )  # fmt: skip
        elif outcome.status == "needs_attention":  # the journal parked it and stored its event
            await self.store.update_run(run.run_id, reason=outcome.reason, meta=counted, epoch=epoch)
        else:
            await self.store.update_run(
                run.run_id,
                status=outcome.status,
                output=outcome.output,
                reason=outcome.reason,
                meta=counted,
                epoch=epoch,
                events=finished,
            )

    # -- the loop -----------------------------------------------------------------------------------
    async def _loop(self, run: Run, journal: RunJournal) -> str:
        messages: list[Message] = [Message(role="user", text=task_text(run.input))]
        seq = 0
        nudge: str | None = None
        context = ContextKeeper(self, run, journal)  # the conversation stays inside the model's window
        for _turn in range(self.spec.max_turns):
            seq, nudge = await self._maybe_nudge(run, journal, seq, messages, nudge)
            seq = await context.fit(seq, messages)
            request = context.request(messages)
            info = self._info(run, journal, seq)
            wire = request.to_json()
            try:
                with self.telemetry.chat(
                    self.model.name,
                    messages=wire["messages"],
                    max_tokens=request.max_tokens,
                    step=seq,
                ) as record:
                    result = await journal.model_step(
                        seq,
                        wire,
                        functools.partial(self._call_model, info, request),
                        name=self.model.name,
                    )
                    response = ModelResponse.from_json(result.value)
                    fill_chat(record, response, result)
            except ModelRejected as exc:
                if not context.overflowed(exc):  # refused for its length: the count was short
                    raise
                seq = await context.fit(seq, messages, refused=exc)
                continue
            messages.append(response.as_message())
            nudge = await self.hooks.after_step(info, "llm", self.model.name, response.text, False)
            seq += 1
            if not response.tool_calls:
                return response.text
            for call in response.tool_calls:
                info = self._info(run, journal, seq)
                reply = await self._tool_step(run, journal, seq, call)
                messages.append(reply)
                nudge = (
                    await self.hooks.after_step(info, "tool", call.name, reply.text, reply.is_error) or nudge
                )
                seq += 1
        raise AbortRun(
            Looping(pattern="max_turns", detail=f"{self.spec.max_turns} model calls without a final answer")
        )

    def _info(self, run: Run, journal: RunJournal, seq: int) -> RunInfo:
        return RunInfo(self.spec.name, run.run_id, seq, self.model.name, journal.recorded(seq) is not None)

    async def _maybe_nudge(
        self, run: Run, journal: RunJournal, seq: int, messages: list[Message], nudge: str | None
    ) -> tuple[int, None]:
        """A recorded nudge is replayed; a new one (live only) is journaled as a ``signal`` step."""
        recorded = journal.recorded(seq)
        if recorded is not None and recorded.kind == "signal":
            text = str(recorded.response)
        elif nudge is not None and recorded is None:
            text = nudge
        else:
            return seq, None
        message = Message(role="user", text=text)

        async def give() -> StepResult:
            return StepResult(value=text, messages=[message.to_json()])

        await journal.model_step(seq, {"nudge": text}, give, kind="signal", name="nudge")
        messages.append(message)
        return seq + 1, None

    async def _call_model(self, info: RunInfo, request: ModelRequest) -> StepResult:
        """The step on the agent's first model that answers (see ``_fallback``)."""
        deadline = self._deadlines.get(info.run_id)
        attempt = functools.partial(self._call_one, request)
        return await self.fallbacks.call(info, self.retry, deadline, attempt)

    async def _call_one(
        self, request: ModelRequest, info: RunInfo, model: Model, policy: RetryPolicy, guard: Guard
    ) -> StepResult:
        """One model's call with its retries: rate-limited, budgeted and priced as that model."""
        permit = None
        if self.limiter is not None:  # a burst waits its turn here instead of meeting the provider's 429
            estimate = functools.partial(_estimate_tokens, request)
            permit = await self.limiter.acquire(model.name, estimate, self.hooks.rate_limited)
        token = await self.hooks.before_model_call(info, request)

        async def on_wait(kind: WaitKind, seconds: float, error: ModelError) -> None:
            await guard(kind, seconds, error)  # may leave this model for the next one
            await self._on_wait(info, kind, seconds, error)

        try:
            response = await complete_with_retries(
                model,
                request,
                policy=policy,
                clock=self.clock,
                on_chunk=lambda: self.hooks.heartbeat("chunk"),
                on_wait=on_wait,
            )
        except BaseException as exc:
            await self.hooks.model_call_failed(info, request, token, exc)
            raise
        cost = await self.hooks.after_model_call(info, request, response, token)
        usage = response.usage
        if permit is not None and self.limiter is not None:
            await self.limiter.settle(
                permit, usage.input_tokens + usage.cache_read_tokens + usage.output_tokens
            )
        if self.limiter is not None and response.rate_hint is not None:
            await self.limiter.heed(model.name, response.rate_hint)  # used up: wait before the 429
        return StepResult(
            value=response.to_json(),
            messages=[response.as_message().to_json()],
            tokens_in=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
            tokens_out=usage.output_tokens,
            cost_usd=float(cost or 0.0),
            model=model.name,
        )

    async def _on_wait(self, info: RunInfo, kind: WaitKind, seconds: float, error: ModelError) -> None:
        if kind == "rate_limited":
            self.hooks.rate_limited(seconds)
            if self.limiter is not None and getattr(error, "retry_after_s", None) is not None:
                await self.limiter.learn(info.model, seconds)
            await self.store.append_event(
                Event(
                    "model.rate_limited",
                    info.run_id,
                    {"run_id": info.run_id, "seq": info.seq, "model": info.model, "wait_s": seconds},
                )
            )
        else:
            self.hooks.extend(seconds)
            logger.info("run %s step %d: %s; retrying in %.1fs", info.run_id, info.seq, error, seconds)

    # -- tools --------------------------------------------------------------------------------------
    async def _tool_step(self, run: Run, journal: RunJournal, seq: int, call: ToolCall) -> Message:
        effect = getattr(self.tools.get(call.name), "effect", None) if call.name in self.tools else None
        with self.telemetry.execute_tool(
            call.name, call.id, arguments=call.arguments, effect=effect
        ) as record:
            result = await self._tool_step_journaled(run, journal, seq, call)
            message = Message.from_json(result.messages[0])
            record.result = message.text
            record.replayed = result.replayed
        return message

    async def _tool_step_journaled(
        self, run: Run, journal: RunJournal, seq: int, call: ToolCall
    ) -> StepResult:
        def reply(text: str, is_error: bool) -> StepResult:
            message = Message(role="tool", text=text, tool_call_id=call.id, is_error=is_error)
            return StepResult(value={"text": text, "is_error": is_error}, messages=[message.to_json()])

        target, problem = self._target(call)
        if problem is not None:
            refused = reply(problem, True)

            async def refuse() -> StepResult:
                return refused

            request = {"refused": call.name, "args": call.arguments, "why": problem}
            return await journal.model_step(seq, request, refuse, kind="tool", name=call.name)
        if is_gated(target, self.spec.approvals, call.name):
            passed = await pass_gate(self.store, self.spec.approvals, run, journal, seq, call, target, reply)
            if isinstance(passed, StepResult):
                return passed
            call = passed
        if self.consulter is not None and call.name == "consult":
            result: StepResult = await self.consulter.step(self, run, journal, seq, call, reply)
            return result

        # an intent left by an earlier incarnation means this is a repeat with the same key
        attempt = 1 if journal.recorded(seq) is None else 2

        async def perform(key: str) -> StepResult:
            text, is_error = await self._invoke(run, seq, call, target, attempt, key, journal.act_before)
            return reply(text, is_error)

        effect = getattr(target, "effect", "read")
        if effect == "read":

            async def read() -> StepResult:  # no effect, so no key of its own: the step's default
                return await perform(journal.key(seq))

            request = {"tool": call.name, "args": call.arguments}
            return await journal.model_step(seq, request, read, kind="tool", name=call.name)
        reconcile = self._reconciler(run, seq, call, target, reply)
        return await journal.effect_step(seq, call.name, call.arguments, effect, perform, reconcile)

    def _target(self, call: ToolCall) -> tuple[Any, str | None]:
        """The tool a call names, or why the call is refused (malformed, unknown, bad arguments)."""
        if call.arguments_error is not None:
            return None, f"malformed call of tool {call.name!r}: {call.arguments_error}"
        try:
            target = self.tools.get(call.name)
            if isinstance(target, Tool | AskHumanTool):
                target.validate(call.arguments)
        except ToolError as exc:
            return None, str(exc)
        return target, None

    def _reconciler(
        self, run: Run, seq: int, call: ToolCall, target: Any, reply: Callable[[str, bool], StepResult]
    ) -> Callable[[str], Awaitable[StepResult | None]] | None:
        """The tool's own check of whether an unsure effect happened (``None`` when it has none); each
        check is an event, so an operator sees what was decided and why."""
        if getattr(target, "reconcile_fn", None) is None:
            return None

        async def reconcile(key: str) -> StepResult | None:
            text = await target.run_reconcile(key)
            data = {"run_id": run.run_id, "seq": seq, "tool": call.name, "key": key}
            await self.store.append_event(
                Event("step.reconciled", run.run_id, {**data, "reconciled": text is not None})
            )
            return None if text is None else reply(text, False)

        return reconcile

    async def _invoke(
        self,
        run: Run,
        seq: int,
        call: ToolCall,
        target: Any,
        attempt: int,
        key: str,
        act_before: float | None = None,
    ) -> tuple[str, bool]:
        """Run a tool with the journal's ``key``; any exception it raises is its result, as an error
        the model reads."""
        ctx = ToolContext(
            run_id=run.run_id,
            agent=self.spec.name,
            tool=call.name,
            seq=seq,
            attempt=attempt,
            idempotency_key=key,
            _on_progress=lambda note: self.hooks.heartbeat("tool"),
            _on_extend=self.hooks.extend,
            _loop=asyncio.get_running_loop(),
            _loop_thread=threading.get_ident(),
            store=self.store,
            _act_before=act_before,
        )
        try:
            return await target.invoke(call.arguments, ctx), False
        except Fenced:
            raise  # the lease may have run out before the tool could start: it did not act
        except ToolError as exc:
            return str(exc), True
        except Exception as exc:
            return f"tool {call.name!r} failed: {type(exc).__name__}: {exc}", True


def _estimate_tokens(request: ModelRequest) -> int:
    """What a call may count against a tokens-per-minute limit: its prompt (about four bytes a
    token) and the most it may answer."""
    size = len(request.system) + sum(len(m.text) + len(str(m.tool_calls)) for m in request.messages)
    return size // 4 + request.max_tokens
