"""What every part of the Store shares: the backend, the clock, the payload threshold."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from beamish._clock import Clock
from beamish._exceptions import Fenced, RunNotFound
from beamish.journal._sql import AsyncTx, Dialect, SyncTx, database_now, for_share

T = TypeVar("T")


class Backend(Protocol):
    dialect: Dialect

    async def run(self, fn: Callable[[SyncTx], T]) -> T: ...

    async def run_single(self, fn: Callable[[SyncTx], T]) -> T: ...

    async def read(self, fn: Callable[[SyncTx], T]) -> T: ...

    def transaction(self) -> AbstractAsyncContextManager[AsyncTx]: ...

    async def close(self) -> None: ...


class StoreBase:
    """Fields the Store's parts read; set by :class:`~beamish.journal.Store`."""

    _backend: Backend
    clock: Clock
    payload_threshold: int
    #: PostgreSQL: the schema the store lives in (``current_schema()``); SQLite: ``"main"``.
    schema: str = "main"
    #: Whose clock decides lease expiries, heartbeats and due times: the database's on PostgreSQL
    #: (nodes on many machines share it), the store's ``clock`` on SQLite (one machine) or when that
    #: clock is a test's fake one (``drives_store_time``), so tests still jump over a lease.
    db_time: bool = False

    @property
    def dialect(self) -> Dialect:
        """``"sqlite"`` or ``"postgresql"``: for the few statements that must differ."""
        return self._backend.dialect

    def tx_now(self, tx: SyncTx) -> float:
        """The time a lease or due-time decision inside ``tx`` is made at (see :attr:`db_time`)."""
        return database_now(tx) if self.db_time else self.clock.time()

    def decide_now(self, tx: SyncTx, clock: Clock) -> float:
        """The time a lease or due-time decision inside ``tx`` is made at for a component that keeps
        its own ``clock`` (a scheduler, a mailbox): the database's on PostgreSQL, else that clock."""
        return database_now(tx) if self.db_time else clock.time()

    async def run(self, fn: Callable[[SyncTx], T]) -> T:
        """Run ``fn(tx)`` in one write transaction off the event loop (one thread hop)."""
        return await self._backend.run(fn)

    async def read(self, fn: Callable[[SyncTx], T]) -> T:
        """Run ``fn(tx)`` in a read transaction (a consistent snapshot) off the event loop."""
        return await self._backend.read(fn)

    def listen(self, channel: str) -> AsyncIterator[str]:
        """Payloads notified on ``channel`` (implemented by the Store)."""
        raise NotImplementedError


def check_epoch(tx: SyncTx, run_id: str, epoch: int) -> str:
    """The fence: refuse (and write nothing) unless ``epoch`` is the run's current epoch.

    Returns the run's agent (the ledger needs it).

    On PostgreSQL the run row is share-locked, so a concurrent claim waits for this write to commit
    and the write cannot land after a newer epoch was granted.
    """
    row = tx.fetchone("SELECT epoch, agent FROM runs WHERE run_id = ?" + for_share(tx.dialect), (run_id,))
    if row is None:
        raise RunNotFound(f"no run {run_id!r}")
    current = int(row["epoch"])
    if current != epoch:
        raise Fenced(
            f"run {run_id!r}: write with epoch {epoch} refused, the run is now held at epoch {current} "
            "(another writer claimed it); nothing was written"
        )
    return str(row["agent"])
