"""The scheduler as a supervised actor: a side service of the node, restarted like any child.

The actor owns one :class:`Scheduler` loop task. Everything it knows lives in the store, so a
restart (or a second node running its own) picks up exactly where the last pass left off; nothing is
kept in memory that a crash could lose. Its ``schedule.fired`` / ``schedule.missed`` events go to the
node's event stream as well as the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from beamish._clock import Clock
from beamish._exceptions import ScheduleError
from beamish._tasks import cancel_and_wait
from beamish.journal import Store, open_store
from beamish.runtime import Actor
from beamish.schedule._cron import Schedule
from beamish.schedule._scheduler import Scheduler, Submit

ScheduleEntry = tuple[str, Schedule, str, Any]  # (schedule_id, schedule, agent, input)


class _LoopDied(Exception):
    """The scheduler loop ended by itself: the actor crashes so its supervisor restarts it."""


class SchedulerActor(Actor):
    """``ChildSpec(id="scheduler", start=SchedulerActor, kwargs={"store": …, "submit": node.submit})``.

    ``store`` is an open :class:`~beamish.journal.Store` (shared with the node) or a URL the actor
    opens and closes itself. ``schedules``, when given, are added (or updated) at start; with
    ``exclusive`` (the default: the config is the truth) every other stored schedule is stopped.
    Calls: ``("add", id, schedule, agent, input)``, ``("remove", id)``, ``("history", id, limit)``,
    ``("success_rate", id)``, ``("pass",)`` (run one pass now; returns its :class:`PassReport`).
    """

    scheduler: Scheduler
    _owned: Store | None
    _loop_task: asyncio.Task[None] | None

    async def init(
        self,
        store: Store | str,
        submit: Submit,
        *,
        schedules: Iterable[ScheduleEntry] | None = None,
        clock: Clock | None = None,
        poll_s: float = 1.0,
        dispatch_lease_s: float = 30.0,
        owner: str | None = None,
        exclusive: bool = True,
        max_consecutive_failures: int = 10,
    ) -> None:
        clock = clock if clock is not None else self.node.clock
        self._owned = None
        self._loop_task = None
        if isinstance(store, str):
            store = self._owned = await open_store(store, clock=clock)
        self.scheduler = Scheduler(
            store,
            submit,
            clock=clock,
            owner=owner,
            poll_s=poll_s,
            dispatch_lease_s=dispatch_lease_s,
            events=self.node.emit,
        )
        if schedules is not None and exclusive:
            await self.scheduler.sync(schedules)
        else:
            for sid, schedule, agent, input in schedules or ():
                await self.scheduler.add(sid, schedule, agent, input)
        self._loop_task = asyncio.create_task(
            self.scheduler.run_forever(max_consecutive_failures), name="beamish-scheduler"
        )
        me = self.ref
        self._loop_task.add_done_callback(lambda task: None if task.cancelled() else me.cast(("loop-died",)))

    async def handle_call(self, request: Any) -> Any:
        match request:
            case ("add", str(sid), Schedule() as schedule, str(agent), input):
                await self.scheduler.add(sid, schedule, agent, input)
                return None
            case ("remove", str(sid)):
                return await self.scheduler.remove(sid)
            case ("history", str(sid), int(limit)):
                return await self.scheduler.history(sid, limit)
            case ("success_rate", str(sid)):
                return await self.scheduler.success_rate(sid)
            case ("pass",):
                return await self.scheduler.run_pass()
        raise ScheduleError(f"scheduler: unknown request {request!r}")

    async def handle_cast(self, message: Any) -> None:
        if message == ("loop-died",):
            task = self._loop_task
            error = task.exception() if task is not None and task.done() and not task.cancelled() else None
            raise _LoopDied(f"the scheduler loop ended: {error!r}") from error

    async def terminate(self, reason: Any) -> None:
        await cancel_and_wait(self._loop_task)  # its own end is not the actor's concern now
        if self._owned is not None:
            await self._owned.close()

    def on_exit(self, reason: Any) -> None:
        task = getattr(self, "_loop_task", None)
        if task is not None and not task.done():
            task.cancel()  # killed: no terminate, but the loop must not outlive the actor
