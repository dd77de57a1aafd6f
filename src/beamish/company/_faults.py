"""The demo's fault plan, and the accelerated clock its schedules run on.

The faults the scripts cannot play themselves are injected from outside, as the world would:
SIGKILL of a random agent's process every few seconds, and a corrupt line written into the shared
memory file. (The scripts play the rest: 429s and 500s from the model, a looping agent, a costly
agent that hits its cap, a tool that hangs.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from beamish._tasks import cancel_and_wait


class AcceleratedClock:
    """Wall time that runs ``speed`` times faster from ``start_wall``; sleeps shrink to match.

    Only the demo's scheduler reads it: a day of schedules fits in a minute, while restarts, leases
    and timeouts keep real time. The clock starts when first read (when the scheduler starts), so
    the company's start-up does not eat into the simulated day.
    """

    def __init__(self, speed: float, start_wall: float) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._t0: float | None = None
        self._wall0 = start_wall

    @property
    def label(self) -> str:
        """How the dashboard names this clock, so no one reads its times as the wall's."""
        start = time.strftime("%H:%M UTC", time.gmtime(self._wall0))
        return (
            f"Demo: the schedules run on a simulated clock, {self.speed:g} times real time from {start}. "
            "Next fires, a scheduled run's creation time and the schedule.fired and schedule.missed "
            "events' times are on that clock; other times are real."
        )

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        return self._wall0 + (now - self._t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


def agent_processes(root: Any) -> Callable[[], Any]:
    """An async function listing ``(agent, pid)`` of every running process-isolated agent under ``root``."""

    async def collect() -> list[tuple[str, int]]:
        found: list[tuple[str, int]] = []
        stack = [root]
        while stack:
            sup = stack.pop()
            with contextlib.suppress(Exception):
                for info in await sup.which_children():
                    if info.ref is None:
                        continue
                    if hasattr(info.ref, "which_children"):
                        stack.append(info.ref)
                        continue
                    pid = info.ref.os_pid  # None for an agent that runs as a task
                    if pid is not None and str(info.id) not in ("memory", "scheduler"):
                        found.append((str(info.id), pid))
        return found

    return collect


class FaultPlan:
    """Runs the injected faults on a timetable and counts what it did."""

    def __init__(
        self,
        *,
        processes: Callable[[], Any],
        memory_file: Path | None,
        kill_every_s: float = 3.0,
        corrupt_at_s: float | None = 5.0,
        seed: int | None = None,
        log: Callable[[str], None] = lambda _: None,
        spared: Callable[[], set[str]] = set,
    ) -> None:
        self.processes = processes
        self.spared = spared
        self.memory_file = memory_file
        self.kill_every_s = kill_every_s
        self.corrupt_at_s = corrupt_at_s
        self.random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="beamish-demo-faults")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        started = time.monotonic()
        next_kill = started + self.kill_every_s
        corrupted = self.corrupt_at_s is None or self.memory_file is None
        while True:
            now = time.monotonic()
            if not corrupted and self.corrupt_at_s is not None and now - started >= self.corrupt_at_s:
                corrupted = self.corrupt_memory_file()
            if now >= next_kill:
                try:
                    await self.kill_random_agent()
                except Exception as exc:  # the plan goes on; the summary shows what was injected
                    self.log(f"fault plan: could not kill an agent: {type(exc).__name__}: {exc}")
                next_kill = now + self.kill_every_s * self.random.uniform(0.7, 1.3)
            await asyncio.sleep(0.1)

    async def kill_random_agent(self) -> str | None:
        # An agent in the middle of another planned fault (a hang the watchdog must catch) is left to
        # it: a SIGKILL there would turn the hang into one more kill and hide the watchdog's work.
        spared = self.spared()
        running: list[tuple[str, int]] = [(a, p) for a, p in await self.processes() if a not in spared]
        if not running:
            return None
        agent, pid = self.random.choice(running)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        self.injected["sigkill"] += 1
        self.log(f"fault: SIGKILL {agent} (pid {pid})")
        return agent

    def corrupt_memory_file(self) -> bool:
        """Append a torn, non-JSON line to the memory file, as a crashed foreign writer would leave."""
        assert self.memory_file is not None
        if not self.memory_file.exists():
            return False
        with open(self.memory_file, "ab") as f:
            f.write(b'{"type":"entity","name":"half-written\n')
            f.flush()
            os.fsync(f.fileno())
        self.injected["corrupt_memory_line"] += 1
        self.log(f"fault: corrupt line appended to {self.memory_file.name}")
        return True
