"""Store outages: a database that restarts, or a disk that is briefly full, is not an agent's bug.

Each backend translates the driver errors that mean "the store cannot be reached now" into
:class:`~beamish.errors.StoreUnavailable` (PostgreSQL: connection refused or cut, server shutting down or
starting; SQLite: busy, I/O error, disk full). Every unit of work then goes through an
:class:`OutageGuard`, which retries it with a short backoff; past ``retry_for_s`` the caller waits in
state ``store_unavailable``, trying again every ``probe_every_s`` on the store's clock. Nothing
reaches the agent, so no supervisor counts a restart, and work resumes within about
``probe_every_s`` of the store's return instead of at a restart backoff's cap.

A unit of work may run again after its commit's acknowledgement was lost (the connection died
between COMMIT and its answer), so the writes that can be retried are idempotent: a step is keyed by
``(run_id, seq)`` and a retry that finds its own row counts as done (see ``record_step``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import SpecError, StoreUnavailable
from beamish.journal._base import Backend
from beamish.journal._sql import AsyncTx, Dialect, SyncTx

T = TypeVar("T")
logger = logging.getLogger("beamish.journal")

#: ``Outage.state`` values.
OK, RETRYING, UNAVAILABLE = "ok", "retrying", "store_unavailable"


@dataclass(frozen=True)
class OutagePolicy:
    """How a Store rides out an outage of its database (defaults suit a restart of PostgreSQL).

    ``retry_for_s``: retry in place (the caller sees a slow write) for this long, then the work waits
    in state ``store_unavailable``. ``probe_every_s``: the longest pause between two tries, so work
    resumes within about this long of the store's return. ``give_up_after_s``: raise
    :class:`~beamish.errors.StoreUnavailable` after waiting this long (None: wait while the node lives).
    """

    retry_for_s: float = 10.0
    probe_every_s: float = 0.5
    give_up_after_s: float | None = None
    first_retry_s: float = 0.05

    def __post_init__(self) -> None:
        for key in ("retry_for_s", "probe_every_s", "first_retry_s"):
            value = getattr(self, key)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise SpecError(f"OutagePolicy.{key} must be seconds > 0, got {value!r}")
        give_up = self.give_up_after_s
        if give_up is not None and (not isinstance(give_up, int | float) or not give_up > 0):
            raise SpecError(f"OutagePolicy.give_up_after_s must be seconds > 0 or None, got {give_up!r}")


@dataclass(frozen=True)
class Outage:
    """What a Store knows of its database's health (for status displays)."""

    state: str
    #: Wall time the current outage began (None while the store is reachable).
    since: float | None = None
    #: The driver's reason for the current outage.
    error: str = ""
    #: Outages this Store has seen end, and the length of the last one in seconds.
    recovered: int = 0
    last_outage_s: float | None = None


class OutageGuard:
    """Runs units of work through outages of one store; one per Store, shared by its callers.

    ``recover`` is the backend's repair between tries (PostgreSQL: a direct connection probe and,
    if the server answers, a fresh pool in place of one waiting out its reconnect backoff).
    ``emit`` receives ``store.unavailable`` when an outage begins and ``store.recovered`` (with
    ``outage_s``) when the first unit of work after it succeeds.
    """

    def __init__(
        self,
        where: str,
        clock: Clock,
        policy: OutagePolicy,
        *,
        recover: Callable[[], Awaitable[None]] | None = None,
        closed: Callable[[], bool] = lambda: False,
    ) -> None:
        self.where = where
        self.clock = clock
        self.policy = policy
        self._recover = recover
        self._closed = closed
        self._listeners: list[Callable[[Event], None]] = []
        self._down_at: float | None = None  # monotonic start of the current outage
        self._outage = Outage(OK)

    @property
    def outage(self) -> Outage:
        """The current state (``ok``, ``retrying`` or ``store_unavailable``)."""
        return self._outage

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` for each ``store.unavailable`` / ``store.recovered``."""
        self._listeners.append(listener)

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``await attempt()``, again and again while the store is unavailable (see the policy)."""
        first_failure: float | None = None
        repaired = False  # one try at once after a repair; after that, a failure waits its backoff
        delay = self.policy.first_retry_s
        while True:
            try:
                result = await attempt()
            except StoreUnavailable as exc:
                if self._closed():
                    raise
                now = self.clock.monotonic()
                first_failure = now if first_failure is None else first_failure
                self._down(exc, now)
                give_up = self.policy.give_up_after_s
                if give_up is not None and now - first_failure >= give_up:
                    raise StoreUnavailable(
                        f"{exc} (still unavailable after {now - first_failure:.1f}s; giving up as "
                        f"OutagePolicy.give_up_after_s={give_up} says)"
                    ) from exc
                if not repaired and await self._repaired():
                    repaired = True
                    continue
                await self.clock.sleep(delay)
                delay = min(delay * 2, self.policy.probe_every_s)
                continue
            if self._down_at is not None:
                self._up()
            return result

    async def _repaired(self) -> bool:
        """Let the backend repair its connections; True when it did (try again at once)."""
        if self._recover is None:
            return False
        try:
            await self._recover()
        except StoreUnavailable:
            return False
        return True

    def _down(self, exc: StoreUnavailable, now: float) -> None:
        if self._down_at is None:
            self._down_at = now
            self._outage = Outage(RETRYING, self.clock.time(), str(exc), *self._history())
            logger.warning("store %s unavailable, retrying: %s", self.where, exc)
            self._emit(Event("store.unavailable", self.where, self._data(error=str(exc)), self.clock.time()))
        elif self._outage.state == RETRYING and now - self._down_at >= self.policy.retry_for_s:
            self._outage = Outage(UNAVAILABLE, self._outage.since, str(exc), *self._history())
            logger.warning(
                "store %s still unavailable after %.1fs; work waits for it (%s)",
                self.where, now - self._down_at, exc,
            )  # fmt: skip

    def _up(self) -> None:
        assert self._down_at is not None
        length = self.clock.monotonic() - self._down_at
        since = self._outage.since
        self._down_at = None
        self._outage = Outage(OK, None, "", self._outage.recovered + 1, length)
        logger.warning("store %s is back after %.2fs", self.where, length)
        data = self._data(outage_s=round(length, 3), since=since)
        self._emit(Event("store.recovered", self.where, data, self.clock.time()))

    def _history(self) -> tuple[int, float | None]:
        return self._outage.recovered, self._outage.last_outage_s

    def _data(self, **extra: object) -> dict[str, object]:
        return {"store": self.where, "pid": os.getpid(), **extra}

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a status display must not turn an outage into a crash
                logger.exception("an outage listener failed on %s", event.kind)


class _Raw(Backend, Protocol):
    """A driver backend: the Store's units of work, and whether it was closed."""

    @property
    def closed(self) -> bool: ...


class GuardedBackend:
    """A backend whose units of work (``run``, ``run_single``, ``read``) ride out outages.

    ``transaction()`` spans the caller's own awaits, so it cannot be run again for them: it is
    passed through, and an outage inside it raises :class:`~beamish.errors.StoreUnavailable` to its caller.
    """

    def __init__(self, raw: _Raw, guard: OutageGuard) -> None:
        self.raw = raw
        self.guard = guard
        self.dialect: Dialect = raw.dialect

    async def run(self, fn: Callable[[SyncTx], T]) -> T:
        return await self.guard.call(lambda: self.raw.run(fn))

    async def run_single(self, fn: Callable[[SyncTx], T]) -> T:
        return await self.guard.call(lambda: self.raw.run_single(fn))

    async def read(self, fn: Callable[[SyncTx], T]) -> T:
        return await self.guard.call(lambda: self.raw.read(fn))

    def transaction(self) -> AbstractAsyncContextManager[AsyncTx]:
        return self.raw.transaction()

    async def close(self) -> None:
        await self.raw.close()
