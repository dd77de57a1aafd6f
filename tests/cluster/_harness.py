"""Node processes for the cluster tests: start, follow (their JSON lines), kill, pause, clean up.

Every wait is bounded and watches a condition (a line from a node, a row in the store); nothing
sleeps a fixed time hoping something happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from beamish.journal import Store
from beamish.schedule import Schedule, Scheduler

MAIN = str(Path(__file__).with_name("_node_main.py"))


def write_script(directory: Path, delay_s: float = 0.15) -> Path:
    """Each run: think (delay), post once, think again, answer."""
    turns = [
        {"delay_s": delay_s, "tool_calls": [{"name": "post", "arguments": {"text": "hello"}}]},
        {"delay_s": delay_s, "text": "done: {task}"},
    ]
    path = directory / "script.json"
    path.write_text(json.dumps({"turns": turns}))
    return path


class NodeProc:
    def __init__(self, node_id: str, proc: asyncio.subprocess.Process) -> None:
        self.node_id = node_id
        self.proc = proc
        self.held: list[str] = []
        self.lines: list[dict[str, Any]] = []
        self.stopped = False
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                self.lines.append(line)
                self.held = list(line.get("held", self.held))
                self._changed.set()
                self._changed = asyncio.Event()

    async def wait_line(self, pred: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(pred(line) for line in self.lines):
            left = deadline - loop.time()
            if left <= 0 or self.proc.returncode is not None:
                raise AssertionError(
                    f"{self.node_id}: no line showing {what} within {timeout}s: {self.lines}"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.stopped = sig == signal.SIGSTOP


class Cluster:
    """Up to three node processes on one store, cleaned up whatever happens."""

    def __init__(
        self,
        url: str,
        tmp: Path,
        *,
        agents: int,
        lease_s: float,
        delay_s: float = 0.15,
        isolation: str = "task",
        scripts: dict[str, str] | None = None,
    ) -> None:
        self.url, self.tmp, self.agents, self.lease_s = url, tmp, agents, lease_s
        self.isolation = isolation
        self.scripts = scripts or {}
        self.script = write_script(tmp, delay_s)
        self.effect_log = tmp / "effects.log"
        self.nodes: dict[str, NodeProc] = {}

    async def start(self, *node_ids: str, timeout: float = 30.0) -> None:
        for node_id in node_ids:
            cfg = {
                "url": self.url,
                "node_id": node_id,
                "agents": self.agents,
                "lease_s": self.lease_s,
                "script": str(self.script),
                "isolation": self.isolation,
                "scripts": self.scripts,
            }
            env = {**os.environ, "BEAMISH_TEST_EFFECT_LOG": str(self.effect_log)}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, MAIN, json.dumps(cfg), stdout=asyncio.subprocess.PIPE, env=env
            )
            self.nodes[node_id] = NodeProc(node_id, proc)
        for node_id in node_ids:
            await self.nodes[node_id].wait_line(lambda line: bool(line.get("ready")), timeout, "ready")

    async def close(self) -> None:
        for node in self.nodes.values():
            if node.proc.returncode is None:
                if node.stopped:
                    node.signal(signal.SIGCONT)
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            try:
                await asyncio.wait_for(node.proc.wait(), 15)
            except TimeoutError:
                node.proc.kill()
                await node.proc.wait()
            node._reader.cancel()

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Poll ``check`` (a store query) every 20 ms until true; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not await check():
        if loop.time() - start > timeout:
            raise AssertionError(f"not {what} within {timeout}s")
        await asyncio.sleep(0.02)
    return loop.time() - start


async def holders(store: Store) -> dict[str, str | None]:
    """Unit → the node holding it now (None when free or expired)."""
    now = await store.read(store.tx_now)
    rows = await store.fetchall("SELECT name, owner, expires_at FROM leases WHERE name LIKE 'unit:%'")
    return {
        str(r["name"])[5:]: (str(r["owner"]) if r["owner"] and float(r["expires_at"]) > now else None)
        for r in rows
    }


async def statuses(store: Store) -> dict[str, str]:
    return {
        str(r["run_id"]): str(r["status"]) for r in await store.fetchall("SELECT run_id, status FROM runs")
    }


async def add_missed_schedule(store: Store, agent: str, minutes: int) -> None:
    """A per-minute schedule whose cursor is ``minutes`` ago with misfire ``all``: every node's
    scheduler finds the same missed ticks due at once and races to fire them. (Due-ness is read on
    the database's clock, so the schedule is added now and its cursor moved back.)"""
    sched = Scheduler(store, _no_submit)
    await sched.add("tick", Schedule("* * * * *", misfire="all", grace_s=86_400), agent, "scheduled post")
    back = 60 * minutes + 1
    await store.execute(
        "UPDATE schedules SET cursor_at = cursor_at - ?, next_due_at = cursor_at - ?, "
        "next_nominal_at = NULL, following_at = NULL WHERE schedule_id = 'tick'",
        (back, back),
    )


async def _no_submit(agent: str, input: Any, *, run_id: str) -> object:
    raise AssertionError("the test's scheduler only stores the schedule")
