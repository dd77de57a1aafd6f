"""SQLite group commit: writes that arrive while one commits share the next COMMIT, each in its own
savepoint, so one that fails is rolled back alone and every caller hears back after its commit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from beamish.journal import open_store

pytestmark = pytest.mark.timeout(30)


class Refused(Exception):
    pass


async def test_concurrent_writes_share_commits_and_a_failing_one_is_rolled_back_alone(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    backend: Any = getattr(store._backend, "raw", store._backend)  # the SQLite backend under its guard
    groups: list[int] = []
    in_group = backend._in_group

    def counting(fns: list[Any]) -> Any:
        groups.append(len(fns))
        return in_group(fns)

    backend._in_group = counting
    try:
        await store.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")

        def write(n: int) -> Any:
            def work(tx: Any) -> int:
                tx.execute("INSERT INTO t (n) VALUES (?)", (n,))
                if n == 13:
                    raise Refused(n)
                return n

            return work

        outcomes = await asyncio.gather(*(store.run(write(n)) for n in range(50)), return_exceptions=True)
        rows = await store.fetchall("SELECT n FROM t ORDER BY n")
    finally:
        await store.close()
    assert [o for o in outcomes if isinstance(o, BaseException)] == [outcomes[13]]
    assert isinstance(outcomes[13], Refused)
    assert [o for i, o in enumerate(outcomes) if i != 13] == [n for n in range(50) if n != 13]
    assert [r["n"] for r in rows] == [n for n in range(50) if n != 13], "only the failing write is undone"
    assert groups and max(groups) > 1, "writes that waited shared a commit"


async def test_a_write_after_close_is_refused_not_left_waiting(tmp_path: Path) -> None:
    from beamish import StoreError

    store = await open_store(f"sqlite:///{tmp_path}/j.db")
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.run(lambda tx: tx.execute("SELECT 1"))
