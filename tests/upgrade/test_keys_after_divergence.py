"""After a divergence a tool's idempotency key is the journal's: the tool, its reconcile and the
step row carry one string, so a ``once`` effect of the new timeline is never performed twice.

The run diverges the way it does in production: a reload changes the agent's instructions while the
agent is down between a crash (SIGKILL of its process) and the resume, so the resumed run's first
model request differs from the recorded one.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from agent import fixture_tools as ft
from agent._scripts import call, write_script
from beamish.company import attach_upgrades
from beamish.company._company import Company
from beamish.company._control import control_path, control_request
from beamish.company._tree import CompanyParts
from beamish.testing import wait_for

from ._company import write_company

pytestmark = pytest.mark.timeout(90)

TURNS = [
    {"tool_calls": [call("publish", text="launch day")]},
    {"tool_calls": [call("lookup", topic="hold-here")]},
    {"text": "Published."},
]


async def _held(run_id: str) -> int:
    """Wait until a tool of ``run_id`` holds; the pid of the agent process holding it."""
    holding = ft.holding_file(run_id)
    await wait_for(holding.exists, timeout=30, what="the agent to reach the held tool")
    pid = int(holding.read_text())
    holding.unlink()
    assert pid != os.getpid(), "the agent must run in its own process"
    return pid


async def test_a_once_tool_after_a_reload_diverged_its_run_sees_the_journals_key(tmp_path: Path) -> None:
    run_id = f"diverged-{uuid.uuid4().hex}"
    model = f"scripted:{write_script(tmp_path, 'once', TURNS)}"
    tools = [f"{ft.__name__}:publish", f"{ft.__name__}:lookup"]
    agent = {"instructions": "Version one.", "model": model, "isolation": "process", "tools": tools}
    toml = tmp_path / "beamish.toml"
    cfg = write_company(toml, {"marketing": agent})
    parts = CompanyParts()
    attach_upgrades(parts)
    ft.hold_file(run_id).write_text("lookup:hold-here")
    async with Company(cfg, parts=parts) as company:
        await company.submit("marketing", "Q3 launch", run_id)
        first = await _held(run_id)  # published at step 1 (key run:1), now held at step 3
        write_company(toml, {"marketing": {**agent, "instructions": "Version two."}})
        path = control_path(cfg.store_url, cfg.base_dir)
        report = await control_request(path, {"op": "reload", "author": "ann", "reason": "new voice"})
        assert report["upgraded"] == ["root/marketing"]
        ft.hold_file(run_id).write_text("after")  # the new timeline's publish holds after its effect
        os.kill(first, signal.SIGKILL)
        second = await _held(run_id)
        os.kill(second, signal.SIGKILL)  # between its intent and its outcome: reconcile decides
        done = await company.node.result(run_id, timeout=30)
        store = company.store
        step = await store.step(run_id, 1)
        events = {
            k: [e.data for _, e in await store.events(kinds=[k], subject=run_id)]
            for k in ("step.divergence", "step.reconciled")
        }
    assert done.status == "succeeded" and done.output == "Published."
    key = f"{run_id}:1:1"
    assert [d["seq"] for d in events["step.divergence"]] == [0], "the reload diverged the run at step 0"
    assert step is not None and step.idempotency_key == key
    publishes = [e for e in ft.effects(run_id) if e.startswith("publish")]
    assert publishes == [f"publish {run_id}:1 launch day", f"publish {key} launch day"], (
        "each timeline's publish ran once, under the key the journal recorded for it"
    )
    assert [(d["key"], d["reconciled"]) for d in events["step.reconciled"]] == [(key, True)]
    assert step.phase == "done" and step.messages is not None
    assert step.messages[0]["text"] == "published 'launch day' (reconciled)"
