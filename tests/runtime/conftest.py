"""Fixtures for runtime tests: a node on a fake clock, recording its events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from beamish import Node
from beamish.testing import EventLog, FakeClock, record_events


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def node(clock: FakeClock) -> AsyncIterator[Node]:
    node = Node(clock=clock, shutdown_timeout=None)
    async with node:
        try:
            yield node
        finally:
            # A failed test may leave a child that only a fake-clock timeout would stop: kill after 2 s.
            try:
                await asyncio.wait_for(asyncio.shield(node.close()), 2.0)
            except TimeoutError:
                for ref in list(node._top):
                    ref.kill()


@pytest.fixture
def events(node: Node) -> EventLog:
    return record_events(node)
