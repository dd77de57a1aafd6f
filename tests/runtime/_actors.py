"""Actors shared by the runtime tests; each records what happened to it in a ``Journal``."""

from __future__ import annotations

import asyncio
from typing import Any

from beamish import Actor, ExitReason, Ignore


class Journal:
    """What the test actors did, in order: ``("init", tag)``, ``("terminate", tag, reason)`` …"""

    def __init__(self) -> None:
        self.entries: list[tuple[Any, ...]] = []

    def add(self, *entry: Any) -> None:
        self.entries.append(entry)

    def of(self, what: str) -> list[tuple[Any, ...]]:
        return [e for e in self.entries if e[0] == what]

    def tags(self, what: str) -> list[Any]:
        return [e[1] for e in self.of(what)]


class Worker(Actor):
    """Answers calls; ``("crash", msg)`` raises, ``("exit", reason)`` stops with that reason."""

    async def init(self, tag: str = "w", journal: Journal | None = None, fail: Any = None) -> None:
        self.tag = tag
        self.journal = journal or Journal()
        if fail == "ignore":
            raise Ignore
        if fail is not None:
            raise RuntimeError(f"{tag} cannot start: {fail}")
        self.journal.add("init", tag)

    async def handle_call(self, request: Any) -> Any:
        match request:
            case ("crash", message):
                raise RuntimeError(message)
            case ("exit", reason):
                self.stop(reason)
                return "stopping"
            case ("sleep", fut):
                await fut
                return "woke"
            case _:
                return (self.tag, request)

    async def handle_cast(self, message: Any) -> None:
        self.journal.add("cast", self.tag, message)

    async def handle_info(self, message: Any) -> None:
        self.journal.add("info", self.tag, message)

    async def terminate(self, reason: ExitReason) -> None:
        self.journal.add("terminate", self.tag, reason)


class Stubborn(Worker):
    """Ignores the shutdown request: its terminate never returns (killed after the shutdown timeout)."""

    async def terminate(self, reason: ExitReason) -> None:
        self.journal.add("terminate", self.tag, reason)
        await asyncio.Future()


class FailsAfterFirst(Actor):
    """Starts once; every later start fails (a child that cannot come back)."""

    async def init(self, state: dict[str, int]) -> None:
        state["starts"] = state.get("starts", 0) + 1
        if state["starts"] > 1:
            raise RuntimeError(f"start #{state['starts']} refused")


class FailsWhileFlagged(Actor):
    """Fails to start while ``state['fail']`` is true."""

    async def init(self, state: dict[str, Any], tag: str = "f") -> None:
        state.setdefault("starts", 0)
        state["starts"] += 1
        if state.get("fail"):
            raise RuntimeError(f"{tag} start refused")

    async def handle_call(self, request: Any) -> Any:
        return request
