"""The semantic guard: one agent's budget, watchdog and loop detector as agent-loop hooks.

Each run gets its own watch (heartbeats, steps, wall clock) and loop detector; every model call is
reserved against the budget before it is sent and settled on its priced usage after. What is found
(a hang, a loop, a cap reached, a crash) becomes the :class:`~beamish.Policy` action for its reason.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import AbortRun, PauseRun, PricingError, SpecError
from beamish._exits import Crashed, ExitReason, OverBudget, exit_from_json
from beamish.agent._bound import PromptMeter
from beamish.agent._budget import Budget, BudgetExceeded, Paused, load_company_budget
from beamish.agent._hooks import RunInfo
from beamish.agent._keeper import BudgetKeeper
from beamish.agent._ledger import Ledger, MemoryLedger, Reservation
from beamish.agent._loops import Detection, LoopDetector
from beamish.agent._messages import ModelRequest, ModelResponse
from beamish.agent._policy import Action, Policy
from beamish.agent._pricing import ModelRates, Price, PriceBook, nano_to_usd
from beamish.agent._store_ledger import StoreLedger
from beamish.agent._watchdog import RunWatch, Verdict, Watchdog


@dataclass
class _RunState:
    """What the guard keeps for the run in progress."""

    run_id: str
    watch: RunWatch | None  # None: the agent opted out of protection (``watchdog=None``)
    loops: LoopDetector | None
    rates: ModelRates
    task: asyncio.Task[Any] | None
    watcher: asyncio.Task[Any] | None = None
    calls: deque[tuple[str, Any]] = field(default_factory=deque)
    recorded: dict[int, Any] | None = None
    capped: Verdict | None = None  # a cap the watcher saw: the run ends at its next hook
    overshot: OverBudget | None = None  # a call cost more than it reserved: the run pauses next
    prompt: PromptMeter = field(default_factory=PromptMeter)


class SemanticGuard:
    """Semantic supervision for one agent: it implements the agent loop's hooks.

    Before each live model call it reserves the call's worst case (pausing the run or the agent when
    a cap does not allow it); after, it settles the real cost, which it also returns for the journal.
    A call that cost more than it reserved pauses the agent right after its step is journaled.
    Every step is a heartbeat for the run's watchdog and an observation for its loop detector; a loop
    climbs the ladder nudge → pause → stop. With ``watchdog=None`` (an agent that opted out of
    protection) there is neither: only the budget and the policy are kept. A hang is a process-level
    failure: the guard calls :attr:`on_process_failure` (the agent actor binds it to exit with
    :class:`~beamish.Hung`, so its supervisor restarts it and the run resumes from the journal), or,
    when nothing is bound, cancels the stuck run. Every decision is an event.
    """

    def __init__(
        self,
        *,
        agent: str,
        keeper: BudgetKeeper,
        prices: PriceBook,
        watchdog: Watchdog | None,
        policy: Policy,
        clock: Clock,
        store: Any = None,
    ) -> None:
        self.agent = agent
        self.keeper = keeper
        self.prices = prices
        self.watchdog = watchdog
        self.policy = policy
        self.clock = clock
        self.store = store
        self.on_process_failure: Callable[[ExitReason], None] | None = None
        #: read the company-wide caps from the store at each run (unless they were given outright)
        self.load_company = store is not None and keeper.company is None
        #: The runs in progress (an agent with ``concurrency > 1`` has several), by run id.
        self._states: dict[str, _RunState] = {}
        self._pending: list[Event] = []
        self._budgeted = agent in keeper.budgets or keeper.company is not None
        keeper.emit = self._pending.append
        self.verdicts: list[Verdict] = []

    # -- events ---------------------------------------------------------------------------------

    async def _flush(self) -> None:
        """Write the pending events to the store (without a store they wait for :meth:`drain_events`)."""
        if self.store is None:
            return
        events, self._pending[:] = list(self._pending), []
        for event in events:
            await self.store.append_event(event)

    def _event(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        self._pending.append(Event(kind, subject, {"agent": self.agent, **data}, at=self.clock.time()))

    def drain_events(self) -> list[Event]:
        """Events not yet written (when the guard has no store, the caller takes them from here)."""
        events, self._pending[:] = list(self._pending), []
        return events

    @property
    def protects(self) -> bool:
        """Whether runs are watched (hangs, stalls, step caps) and checked for loops."""
        return self.watchdog is not None

    # -- the hooks ------------------------------------------------------------------------------

    async def before_run(self, run: RunInfo) -> None:
        if self.load_company:
            company = await load_company_budget(self.store)
            if company != self.keeper.company:
                self.keeper.set_company(company)
                self._budgeted = self.agent in self.keeper.budgets or company is not None
        try:
            rates = self._price(run.model)
        except PricingError as exc:
            self._event("run.refused", run.run_id, {"run_id": run.run_id, "error": str(exc)})
            await self._flush()
            raise AbortRun(Crashed(exc)) from None
        record = await self.keeper.paused(self.agent, run.run_id)
        await self._flush()
        if record is not None:
            raise PauseRun(exit_from_json(record.reason))
        watch = RunWatch(self.watchdog, self.clock) if self.watchdog is not None else None
        state = _RunState(run.run_id, watch, LoopDetector() if watch else None, rates, _current())
        self._states[run.run_id] = state
        _CURRENT.set(state)  # the run's own task: heartbeats without a run id find their run by it
        if state.loops is not None:
            state.loops.on_input()
        if watch is not None:
            state.watcher = asyncio.ensure_future(self._watch(state))

    async def before_model_call(self, run: RunInfo, request: ModelRequest) -> Any:
        state = self._run(run)
        if state.watch is not None:
            state.watch.beat("model call")
        if state.capped is not None:
            raise AbortRun(state.capped.reason)
        try:  # before any byte is sent: a call with no price is never made (fail closed)
            rates = self._rates(state, run)
        except PricingError as exc:
            self._event("run.refused", run.run_id, {"run_id": run.run_id, "error": str(exc)})
            await self._flush()
            raise AbortRun(Crashed(exc)) from None
        if not self._budgeted:
            return None
        amount = rates.worst_case_nano(state.prompt.input_bound(run.model, request), request.max_tokens)
        try:
            return await self.keeper.reserve(self.agent, run.run_id, amount, seq=run.seq)
        except BudgetExceeded as exc:
            await self._flush()
            self._act(self.policy.on_budget, exc.refusal.reason())
        except Paused as exc:
            await self._flush()
            raise PauseRun(exit_from_json(exc.record.reason)) from None

    async def after_model_call(
        self, run: RunInfo, request: ModelRequest, response: ModelResponse, token: Any
    ) -> float:
        state = self._run(run)
        if state.watch is not None:
            state.watch.beat("model answer")
        state.calls.extend((c.name, c.arguments) for c in response.tool_calls)
        cost = self._rates(state, run).cost_nano(response.usage)
        if isinstance(token, Reservation):
            await self.keeper.settle(token, cost, seq=run.seq)
            if cost > token.amount:  # the bound did not hold: no cap can be trusted for this agent
                usage = response.usage.to_json()
                state.overshot = await self.keeper.overshoot(token, cost, run.model, usage)
            await self._flush()
        return nano_to_usd(cost)

    async def model_call_failed(
        self, run: RunInfo, request: ModelRequest, token: Any, error: BaseException
    ) -> None:
        if isinstance(token, Reservation):
            await self.keeper.release(token)

    async def after_step(self, run: RunInfo, kind: str, name: str, result: str, is_error: bool) -> str | None:
        state = self._run(run)
        if state.overshot is not None:  # the step that overshot is journaled: pause right after it
            raise PauseRun(state.overshot)
        if state.capped is not None:
            raise AbortRun(state.capped.reason)
        if state.watch is None or state.loops is None:
            return None  # unprotected: nothing watches the steps
        verdict = state.watch.step(kind)
        if verdict is not None:
            self.verdicts.append(verdict)
            self._pending.append(verdict.event(run.run_id, self.clock.time()))
            await self._flush()
            raise AbortRun(verdict.reason)
        if kind == "llm":
            if run.replaying:
                await self._recorded_calls(state, run.seq)
            found = state.loops.on_reply(run.seq, result, len(state.calls) or (1 if run.replaying else 0))
        else:
            tool, args = state.calls.popleft() if state.calls else (name, None)
            found = state.loops.on_tool(run.seq, tool if tool == name else name, args, result, is_error)
        if found is None:
            return None
        return await self._climb(state, run, found)

    async def after_run(self, run: RunInfo, status: str) -> None:
        state = self._states.pop(run.run_id, None)
        if state is not None:
            if state.watch is not None:
                state.watch.stop()
            if state.watcher is not None:
                state.watcher.cancel()
        await self._flush()

    def heartbeat(self, what: str) -> None:
        state = self._current()
        watch = state.watch if state is not None else None
        if watch is not None:
            if what == "chunk":
                watch.chunk()
            else:
                watch.beat(what)

    def extend(self, seconds: float) -> None:
        state = self._current()
        watch = state.watch if state is not None else None
        if watch is not None:
            watch.extend(seconds)

    def _current(self) -> _RunState | None:
        """The run a heartbeat comes from: the one whose task (or a thread it started) calls, or
        the only run in progress."""
        state = _CURRENT.get()
        if state is not None and self._states.get(state.run_id) is state:
            return state
        if len(self._states) == 1:
            return next(iter(self._states.values()))
        return None

    def rate_limited(self, seconds: float) -> None:
        """Waiting out a 429 is back-pressure, not silence."""
        self.extend(seconds)

    def crash_action(self, run: RunInfo, error: BaseException) -> Action:
        """What the loop does with an exception that escaped a run: ``on_crash`` (an escalation
        always goes on up to the supervisor)."""
        return "escalate" if isinstance(error, Escalated) else self.policy.on_crash

    async def resume(self, subject: str) -> bool:
        """Lift budget pauses: this agent's own and its runs' (``subject`` the agent's name), the
        company's (``"*"``) or one run's (``"run:<id>"``)."""
        if subject == self.agent:
            lifted = await self.keeper.resume_agent(subject) > 0
        else:
            lifted = await self.keeper.resume(subject)
        await self._flush()
        return lifted

    # -- decisions ------------------------------------------------------------------------------

    def _rates(self, state: _RunState, run: RunInfo) -> ModelRates:
        """The rates of the model this call names: the agent's, fixed at ``before_run``, or another
        one (a framework agent's client may name any model in each request)."""
        if run.model == state.rates.model:
            return state.rates
        return self._price(run.model)

    def _price(self, model: str) -> ModelRates:
        """``model``'s rates. A model with no price fails closed when a cap is kept (it could not be
        held under it); an agent with no cap runs it at zero, its spend unknown rather than refused."""
        try:
            return self.prices.rates(model)
        except PricingError:
            if self._budgeted:
                raise
            return replace(ModelRates.from_price(model, Price.free()), source="unpriced")

    def _run(self, run: RunInfo) -> _RunState:
        state = self._states.get(run.run_id)
        if state is None:
            raise RuntimeError(f"hooks called for run {run.run_id!r} outside before_run/after_run")
        return state

    async def _recorded_calls(self, state: _RunState, seq: int) -> None:
        """On replay the model is not called: its tool calls come from the journal."""
        if state.recorded is None:
            steps = await self.store.steps(state.run_id) if self.store is not None else []
            state.recorded = {s.seq: s.response for s in steps if s.kind == "llm"}
        response = state.recorded.get(seq)
        if isinstance(response, dict):
            state.calls.extend((c["name"], c.get("arguments")) for c in response.get("tool_calls", ()))

    async def _climb(self, state: _RunState, run: RunInfo, found: Detection) -> str | None:
        assert state.loops is not None  # a detection needs a detector
        rung = state.loops.climb()
        if run.replaying:
            # the journal already holds what was decided here (its nudge is replayed from there):
            # the ladder is rebuilt, not climbed again, and nothing is announced twice
            if rung == "nudge":
                state.loops.on_nudge(run.seq + 1)
                return found.nudge_text()
            return None
        kind = "loop.nudged" if rung == "nudge" else "loop.detected"
        self._pending.append(found.event(kind, run.run_id, rung, self.clock.time()))
        await self._flush()
        if rung == "nudge":
            state.loops.on_nudge(run.seq + 1)
            return found.nudge_text()
        self._act("stop" if rung == "stop" else self.policy.on_loop, found.reason())
        return None

    def _act(self, action: Action, reason: ExitReason) -> NoReturn:
        """Apply a run-level decision: park the run, end it, or hand it to the supervisor."""
        if action == "pause":
            raise PauseRun(reason)
        if action == "escalate":
            raise Escalated(reason)
        raise AbortRun(reason)

    async def _watch(self, state: _RunState) -> None:
        """Beside the run: when the watchdog fires, write the event first, then end the process (a
        hang) or mark the run to end at its next step (the wall-clock cap).

        A hang always ends the agent's process — the stuck call cannot be unwound from here. With
        ``on_hang="restart"`` or ``"escalate"`` the supervisor's restart resumes the run from its
        journal; with ``"stop"`` or ``"pause"`` the run is first marked failed or paused, so the
        restarted agent does not take it up again (``resume`` does, for a paused one)."""
        assert state.watch is not None  # only a watched run has a watcher
        verdict = await state.watch.watch(self.verdicts.append)
        ended = self._states.get(state.run_id) is not state
        if verdict is None or ended or (state.task is not None and state.task.done()):
            return  # the run ended without after_run (its agent crashed): nothing left to watch
        event = verdict.event(state.run_id, self.clock.time())
        if verdict.process_level:
            event.data["action"] = self.policy.on_hang
        self._pending.append(event)
        await self._flush()
        if not verdict.process_level:
            state.capped = verdict  # the run is making progress: it ends at its next step
            return
        if self.policy.on_hang in ("stop", "pause") and self.store is not None:
            # the run must not simply resume after the restart: record its end (or its pause) first
            status = "failed" if self.policy.on_hang == "stop" else "paused"
            await self.store.update_run(state.run_id, status=status, reason=verdict.reason)
            self._event(
                f"run.{'finished' if status == 'failed' else 'paused'}",
                state.run_id,
                {
                    "run_id": state.run_id,
                    "status": status,
                    "reason": verdict.reason.to_json(),
                },
            )
            await self._flush()
        if self.on_process_failure is not None:
            self.on_process_failure(verdict.reason)
        elif state.task is not None and not state.task.done():
            state.task.cancel(f"watchdog: {verdict.kind}")


class Escalated(Exception):
    """A run-level failure whose policy is ``escalate``: it leaves the run loop as an error, so the
    agent exits ``Crashed`` with it and its supervisor's strategy decides."""

    def __init__(self, reason: ExitReason) -> None:
        self.reason = reason
        super().__init__(f"escalated: {reason!r}")


#: The run state of the task a hook is called from (set by ``before_run`` in the run's task).
_CURRENT: contextvars.ContextVar[_RunState | None] = contextvars.ContextVar("beamish_run", default=None)


def _current() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def make_hooks(
    spec: Any,
    store: Any,
    clock: Clock,
    *,
    company: Budget | None = None,
    ledger: Ledger | None = None,
) -> SemanticGuard:
    """The hooks factory the agent loop resolves for a spec with a watchdog (every agent's default)
    or a budget; ``watchdog=None`` keeps only the budget.

    ``spec.budget`` and ``spec.watchdog`` may be the objects or their JSON; ``spec.policy`` (if the
    spec has one) likewise. The ledger is the store's (shared by every process and node), or one
    in memory when there is no store.
    """
    budget = _coerce(spec.budget, Budget, "budget")
    watchdog = _coerce(spec.watchdog, Watchdog, "watchdog")
    policy = _coerce(getattr(spec, "policy", None), Policy, "policy") or Policy()
    if ledger is None:
        ledger = StoreLedger(store) if store is not None else MemoryLedger()
    budgets = {spec.name: budget} if budget is not None else {}
    keeper = BudgetKeeper(ledger, clock, budgets, company)
    prices = PriceBook({**(company.prices if company else {}), **(budget.prices if budget else {})})
    return SemanticGuard(
        agent=spec.name,
        keeper=keeper,
        prices=prices,
        watchdog=watchdog,
        policy=policy,
        clock=clock,
        store=store,
    )


def _coerce(value: Any, cls: Any, what: str) -> Any:
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        return cls.from_mapping(value, what)
    raise SpecError(f"{what} must be a beamish.{cls.__name__} (or its mapping), got {value!r}")
