"""A fresh store per test on every backend, on a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from beamish.journal import Store, open_store
from beamish.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(store_url: str, clock: FakeClock) -> AsyncIterator[Store]:
    s = await open_store(store_url, clock=clock, payload_threshold=1024)
    try:
        yield s
    finally:
        await s.close()
