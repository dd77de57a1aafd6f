"""A real, recording implementation of the scheduler's ``Submit``: what the node layer will provide.

Every call is written to the ``test_submits`` table (so several processes can be counted together);
the run is then started only if it is still queued (the same rule a node applies: a run_id is one
run) and finished with the outcome the test asked for.
"""

from __future__ import annotations

import os
from typing import Any

from beamish.journal import Store, SyncTx

_DDL = (
    "CREATE TABLE IF NOT EXISTS test_submits (run_id TEXT NOT NULL, agent TEXT NOT NULL, pid INTEGER)",
    "CREATE TABLE IF NOT EXISTS test_executions (run_id TEXT NOT NULL, pid INTEGER)",
)


async def create_tables(store: Store) -> None:
    """The recording tables; made once by the test, before any worker runs (concurrent CREATE TABLE
    IF NOT EXISTS can collide on PostgreSQL)."""
    for ddl in _DDL:
        await store.execute(ddl)


class RecordingAgents:
    def __init__(self, store: Store, fail: set[str] | None = None) -> None:
        self.store = store
        self.fail = fail or set()
        self.calls: list[tuple[str, Any, str]] = []
        self.executed: list[str] = []

    async def __call__(self, agent: str, input: Any, *, run_id: str) -> object:
        self.calls.append((agent, input, run_id))
        await self.store.execute(
            "INSERT INTO test_submits (run_id, agent, pid) VALUES (?, ?, ?)", (run_id, agent, os.getpid())
        )
        started = await self.store.run(lambda tx: self._start(tx, run_id))
        if started:
            status = "failed" if agent in self.fail else "succeeded"
            await self.store.update_run(run_id, status=status, output=f"{agent} did {input}")
            self.executed.append(run_id)
        return run_id

    @staticmethod
    def _start(tx: SyncTx, run_id: str) -> bool:
        """queued → running, recorded in the same transaction: a run starts at most once."""
        if not tx.execute(
            "UPDATE runs SET status = 'running' WHERE run_id = ? AND status = 'queued'", (run_id,)
        ):
            return False
        tx.execute("INSERT INTO test_executions (run_id, pid) VALUES (?, ?)", (run_id, os.getpid()))
        return True


async def executions_per_run(store: Store) -> dict[str, int]:
    rows = await store.fetchall("SELECT run_id, COUNT(*) AS n FROM test_executions GROUP BY run_id")
    return {str(r["run_id"]): int(r["n"]) for r in rows}


async def submits_per_run(store: Store) -> dict[str, int]:
    rows = await store.fetchall("SELECT run_id, COUNT(*) AS n FROM test_submits GROUP BY run_id")
    return {str(r["run_id"]): int(r["n"]) for r in rows}
