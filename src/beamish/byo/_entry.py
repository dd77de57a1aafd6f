"""``AgentSpec(entry="package.module:function")``: an agent written with any framework, supervised.

The entry is an async function ``entry(task, ctx) -> answer``. The agent actor runs it in place of
its own model/tool loop, with everything else unchanged: the run is claimed with a fencing epoch,
the hooks (budget, watchdog, loop detector) see every step, and the outcome is stored the same way
(succeeded, paused, failed, needs_attention). A restarted agent calls the entry again from the
start; its model requests (through :func:`beamish.durable`) and steps (:func:`beamish.step`) come
back from the journal until the first one with no record, where the run continues live.

Frameworks run tools in task groups and catch ``Exception`` around them, so the signals that end
a run are looked for in exception groups, and an unknown outcome or a lost lease a framework
swallowed is raised when the entry returns (:attr:`RunContext.fatal`).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from beamish._exceptions import AbortRun, Fenced, PauseRun, SpecError, UnknownOutcome
from beamish._exits import Crashed
from beamish.agent._agent import register_loop
from beamish.agent._hooks import import_path
from beamish.agent._loop import RunLoop
from beamish.byo._context import RunContext, enter, leave
from beamish.journal import Run
from beamish.journal._payload import canonical
from beamish.journal._replay import RunJournal

#: What ends a run, in the order it is looked for inside an exception group.
_SIGNALS: tuple[type[BaseException], ...] = (Fenced, UnknownOutcome, AbortRun, PauseRun)


def load_entry(path: str, agent: str) -> Any:
    """The entry function at ``path``; a ``SpecError`` naming the agent when it is not async."""
    fn = import_path(path, f"agent {agent!r}: entry")
    if not inspect.iscoroutinefunction(fn):
        raise SpecError(f"agent {agent!r}: entry {path!r} must be an async function (task, ctx) -> answer")
    return fn


def _signal(group: BaseExceptionGroup[Any]) -> BaseException | None:
    for kind in _SIGNALS:
        match = group.subgroup(lambda e, kind=kind: isinstance(e, kind))  # type: ignore[misc]
        if match is not None:
            found: BaseException = match
            while isinstance(found, BaseExceptionGroup):
                found = found.exceptions[0]
            return found
    return None


class EntryLoop(RunLoop):
    """The run loop of an ``entry`` agent: the user's function instead of beamish's loop."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        entry = self.spec.entry
        if entry is None:
            raise SpecError(f"agent {self.spec.name!r} has no entry: it runs beamish's own loop")
        self.entry = load_entry(entry, self.spec.name)

    async def _loop(self, run: Run, journal: RunJournal) -> Any:
        ctx = RunContext(
            run_id=run.run_id,
            agent=self.spec.name,
            task=run.input,
            model=self.model.name,
            journal=journal,
            hooks=self.hooks,
            clock=self.clock,
            max_turns=self.spec.max_turns,
            loop=asyncio.get_running_loop(),
            telemetry=self.telemetry,
        )
        token = enter(ctx)
        try:
            output = await self.entry(run.input, ctx)
        except BaseExceptionGroup as group:
            found = ctx.fatal or _signal(group)
            if found is not None:
                raise found from group
            raise
        except Exception as exc:
            ctx.check()  # a failure that ended the run wins over what the framework made of it
            # the user's code failed this run (a framework error, a bug): the run fails, as a native
            # run does when its model fails for good; the agent lives on and takes its next run
            raise AbortRun(Crashed(exc)) from exc
        finally:
            leave(token)
        ctx.check()
        try:
            canonical(output)
        except SpecError:
            raise SpecError(
                f"agent {self.spec.name!r}: entry returned {type(output).__name__}, which is not JSON"
            ) from None
        return output


register_loop("entry", EntryLoop)  # the agent layer runs entry agents with it (it cannot import byo)
