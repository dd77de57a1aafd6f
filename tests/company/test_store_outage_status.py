"""A running company shows a store outage as it happens: status, events and their length.

The outage is injected at the driver boundary (the backend raises ``StoreUnavailable`` as it does on
a full disk or a stopped server, until the test gives the store back); the real outages are in
``tests/reliability/test_store_outages.py``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from beamish._events import Event
from beamish.company import CompanyConfig, load_config_data
from beamish.company._company import Company
from beamish.company._services import company_parts
from beamish.errors import StoreUnavailable
from beamish.journal import open_store
from beamish.journal._sql import SyncTx
from beamish.testing import wait_for

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")


def config(tmp_path: Path) -> CompanyConfig:
    (tmp_path / "ceo.json").write_text(json.dumps({"turns": [{"text": "Priorities set."}]}))
    agent = {"instructions": "Run the company.", "model": "scripted:ceo.json", "isolation": "task"}
    data = {
        "store": {"url": "sqlite:///journal.db"},
        "memory": {"enabled": False},
        "agents": {"ceo": agent},
    }
    return load_config_data(data, tmp_path / "beamish.toml")


class Unreachable:
    """The store's driver backend, refusing every unit of work while ``down``."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.down = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("journal.db: the SQLite file cannot be written now (SQLITE_FULL)")

    async def run(self, fn: Callable[[SyncTx], T]) -> T:
        self._check()
        return await self._raw.run(fn)

    async def run_single(self, fn: Callable[[SyncTx], T]) -> T:
        self._check()
        return await self._raw.run_single(fn)

    async def read(self, fn: Callable[[SyncTx], T]) -> T:
        self._check()
        return await self._raw.read(fn)


async def test_status_and_events_show_a_store_outage_and_its_length(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    seen: list[Event] = []
    async with Company(cfg, parts=company_parts(cfg), sinks=[seen.append]) as company:
        store = company.store
        fault = Unreachable(store._backend.raw)
        store._backend.raw = fault
        fault.down = True
        write = asyncio.ensure_future(store.execute("UPDATE runs SET status = status"))
        await wait_for(lambda: any(e.kind == "store.unavailable" for e in seen), what="store.unavailable")

        tree = await asyncio.wait_for(company.tree(), 5)  # status answers during the outage
        assert tree.state == "store_unavailable"
        assert not write.done(), "the write waits for the store; it does not fail"

        fault.down = False
        await asyncio.wait_for(write, 10)
        assert (await company.tree()).state != "store_unavailable"
        recovered = [e for e in seen if e.kind == "store.recovered"]
        assert len(recovered) == 1 and recovered[0].data["outage_s"] > 0
        assert store.outage.last_outage_s == pytest.approx(recovered[0].data["outage_s"], abs=0.001)

    async with await open_store(cfg.store_url) as reopened:  # journaled too, once the store was back
        kinds = [e.kind for _, e in await reopened.events(0)]
    assert kinds.count("store.unavailable") == 1
    assert kinds.count("store.recovered") == 1
    assert [e.kind for e in seen].count("store.unavailable") == 1, (
        "published live once, not again from the tail"
    )
