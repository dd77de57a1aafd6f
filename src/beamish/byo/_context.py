"""The current run, as seen from code beamish did not write: a framework's agent, the user's tools.

A foreign agent cannot be handed beamish's journal through its own call chain, so the run it is
serving travels in a :class:`contextvars.ContextVar`. asyncio copies context into every task, and
``asyncio.to_thread`` / anyio's worker threads copy it too, so a model request made deep inside a
framework, or a tool it runs in a thread, still finds its run: :func:`current_run`.

The context numbers the run's steps. A framework makes its model calls and tool calls in the same
order when it is re-executed with the same answers, so the n-th step of a replay is the n-th step
of the journal; a step is numbered when it starts (before its first ``await``), so concurrent tool
calls started in a fixed order keep their numbers too.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from dataclasses import dataclass, field
from typing import Any

from beamish._clock import Clock
from beamish._exceptions import AbortRun, Fenced, SpecError, UnknownOutcome
from beamish._exits import Looping
from beamish.agent._hooks import AgentHooks, RunInfo
from beamish.journal._replay import RunJournal

_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar("beamish_run", default=None)
#: The idempotency key of the step being performed (inside a ``beamish.step`` body).
_step_key: contextvars.ContextVar[str | None] = contextvars.ContextVar("beamish_step_key", default=None)


@dataclass
class RunContext:
    """One run of an agent written with any framework: where its steps are journaled.

    ``task`` is the run's input as submitted; ``run_id`` its id (and the stem of every idempotency
    key); ``agent`` the agent's name; ``model`` the registry name the agent is priced by. Model
    requests through a :func:`beamish.durable` client and functions under :func:`beamish.step`
    become steps of this run. Passed to an ``entry`` function as its second argument, and found
    anywhere below it with :func:`current_run`.
    """

    run_id: str
    agent: str
    task: Any
    model: str
    journal: RunJournal
    hooks: AgentHooks
    clock: Clock
    max_turns: int = 200
    loop: asyncio.AbstractEventLoop | None = None
    #: Model calls (live or replayed) so far; ``max_turns`` bounds them.
    model_turns: int = 0
    #: A failure that ends the run even if a framework swallows it (it catches ``Exception`` in
    #: tools): every later step re-raises it, and so does the entry when it returns.
    fatal: BaseException | None = None
    #: The loop detector's nudge, sent with the next model request (then dropped).
    nudge: str | None = None
    #: The agent's telemetry (``chat`` / ``execute_tool`` spans), or None for none.
    telemetry: Any = None
    _seq: int = 0
    _thread: int = field(default_factory=threading.get_ident)

    def next_seq(self) -> int:
        """Number the next step."""
        self.check()
        seq = self._seq
        self._seq += 1
        return seq

    def give_back(self, seq: int) -> None:
        """Un-number ``seq`` if no later step was numbered (a request that was not journaled, e.g.
        a 429 the SDK retries, must leave the numbering of a replay unchanged)."""
        if self._seq == seq + 1:
            self._seq = seq

    def info(self, seq: int) -> RunInfo:
        """What the hooks are told about step ``seq``."""
        return RunInfo(self.agent, self.run_id, seq, self.model, self.journal.recorded(seq) is not None)

    def count_turn(self) -> None:
        """One more model call; past ``max_turns`` the run fails as looping."""
        self.model_turns += 1
        if self.model_turns > self.max_turns:
            raise AbortRun(
                Looping(pattern="max_turns", detail=f"{self.max_turns} model calls without a final answer")
            )

    def check(self) -> None:
        """Refuse to take another step after a failure that ended the run."""
        if self.fatal is not None:
            raise self.fatal

    def remember(self, exc: BaseException) -> None:
        """Keep a run-ending failure (an unknown outcome, a lost lease) past a framework's handlers."""
        if isinstance(exc, UnknownOutcome | Fenced) and self.fatal is None:
            self.fatal = exc

    def progress(self) -> None:
        """A heartbeat for the watchdog from long work between steps (a tool's own progress)."""
        self.hooks.heartbeat("tool")

    def extend(self, seconds: float) -> None:
        """Tell the watchdog the next ``seconds`` of silence are expected (a known-long tool)."""
        self.hooks.extend(seconds)

    def in_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread

    @property
    def idempotency_key(self) -> str | None:
        """Inside a ``beamish.step`` body: its idempotency key (``run_id:seq``), else None."""
        return _step_key.get()


def current_run() -> RunContext:
    """The run the calling code is part of; a ``SpecError`` outside any run."""
    ctx = _current.get()
    if ctx is None:
        raise SpecError(
            "no beamish run is active here: current_run() works inside an agent's entry function "
            "(AgentSpec(entry=...)) and the code it calls"
        )
    return ctx


def active_run() -> RunContext | None:
    """The current run, or None outside one (durable clients then pass requests straight through)."""
    return _current.get()


def enter(ctx: RunContext) -> contextvars.Token[RunContext | None]:
    return _current.set(ctx)


def leave(token: contextvars.Token[RunContext | None]) -> None:
    _current.reset(token)
