"""The demo's fault plan leaves an agent alone while another planned fault is under way in it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from beamish.company._demo import hanging_agents
from beamish.company._faults import FaultPlan

pytestmark = pytest.mark.timeout(20)


async def test_a_random_sigkill_never_lands_on_a_spared_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: killed.append(pid))

    async def processes() -> list[tuple[str, int]]:
        return [("cto", 101), ("ceo", 102)]

    plan = FaultPlan(processes=processes, memory_file=None, seed=1, spared=lambda: {"cto"})
    victims = [await plan.kill_random_agent() for _ in range(20)]
    assert set(victims) == {"ceo"} and set(killed) == {102}


async def test_with_every_agent_spared_nothing_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "kill", lambda pid, sig: pytest.fail("nothing may be killed"))

    async def processes() -> list[tuple[str, int]]:
        return [("cto", 101)]

    plan = FaultPlan(processes=processes, memory_file=None, spared=lambda: {"cto"})
    assert await plan.kill_random_agent() is None
    assert plan.injected["sigkill"] == 0


def test_the_cto_is_spared_from_its_hang_until_well_after_the_watchdog_should_act(tmp_path: Path) -> None:
    assert hanging_agents(tmp_path, 2.0) == set()
    marker = tmp_path / "legacy-batch.hung"
    marker.touch()
    assert hanging_agents(tmp_path, 2.0) == {"cto"}
    long_ago = time.time() - 60
    os.utime(marker, (long_ago, long_ago))
    assert hanging_agents(tmp_path, 2.0) == set()
