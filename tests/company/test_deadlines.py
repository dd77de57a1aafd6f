"""Deadlines: a run that misses its deadline is parked as needs_attention with the reason and an
alert goes out through the alert sinks; a run in time is left alone; bad deadlines are refused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from _receivers import Receiver

from beamish import AgentSpec, SpecError
from beamish.agent._deadline import sweep_overdue
from beamish.company._alerter import Alerter
from beamish.company._config import load_config
from beamish.company._outbox import Route
from beamish.company._sinks import WebhookSink
from beamish.errors import ConfigError
from beamish.journal import open_store
from beamish.runtime import Node, SupervisorSpec
from beamish.testing import FakeClock, wait_for

pytestmark = pytest.mark.timeout(60)
SECRET = "hook-secret"


def _script(tmp_path: Path, delay_s: float) -> Path:
    path = tmp_path / "slow.json"
    path.write_text(json.dumps({"turns": [{"text": "posted", "delay_s": delay_s}]}))
    return path


async def _run_with_deadline(tmp_path: Path, delay_s: float, deadline: str) -> tuple[Any, list[Any], Any]:
    clock = FakeClock()
    url = f"sqlite:///{tmp_path}/j.db"
    spec = AgentSpec(
        name="poster",
        instructions="Post the update.",
        model=f"scripted:{_script(tmp_path, delay_s)}",
        model_options={"clock": clock},
        isolation="task",
    )
    store = await open_store(url, clock=clock)
    try:
        alerter = Alerter(store, [Route("ops")], [], backoff_s=10.0)
        await alerter.route()  # alerts are about what comes next
        async with Node(store=url, clock=clock) as node:
            await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
            rid = await node.submit("poster", "post it", deadline=deadline)
            done = asyncio.ensure_future(node.result(rid, timeout=30))

            def step() -> bool:  # the model takes ``delay_s`` of fake time to answer
                due = clock.next_deadline()
                if not done.done() and due is not None and due - clock.monotonic() <= delay_s:
                    clock.advance(due - clock.monotonic())
                return done.done()

            await wait_for(step, timeout=30, what="the run to end")
            result = await done
        with Receiver(SECRET) as hook:
            alerter.sinks = {"ops": WebhookSink("ops", hook.url, secret=SECRET)}
            await alerter.one_pass()
        run = await store.get_run(rid)
    finally:
        await store.close()
    return result, hook.verified, run


async def test_a_run_that_answers_after_its_deadline_needs_attention_and_is_alerted(tmp_path: Path) -> None:
    result, alerts, run = await _run_with_deadline(tmp_path, delay_s=90.0, deadline="1m")
    assert result.status == "needs_attention"
    assert run.output == "posted", "the late answer is kept for the person who looks"
    assert "missed its deadline" in str(run.reason) and "60.0s after it was due" in str(run.reason)
    found = [a for a in alerts if a["kind"] == "run.needs_attention"]
    assert len(found) == 1, [(a["kind"], a.get("subject")) for a in alerts]
    (alert,) = found
    assert alert["severity"] == "critical"
    assert "missed its deadline" in json.dumps(alert)
    assert alert["event"]["data"]["late_s"] >= 30.0, "the model took 90 s of a 60 s deadline"


async def test_a_run_in_time_is_not_flagged(tmp_path: Path) -> None:
    result, alerts, run = await _run_with_deadline(tmp_path, delay_s=20.0, deadline="1m")
    assert result.status == "succeeded" and run.output == "posted"
    assert [a for a in alerts if a["kind"] == "run.needs_attention"] == []


@pytest.mark.parametrize("bad", ["0", "soon", "-5m", 0])
async def test_a_bad_deadline_is_refused_before_a_run_is_made(tmp_path: Path, bad: object) -> None:
    spec = AgentSpec(
        name="poster", instructions="x", model=f"scripted:{_script(tmp_path, 0)}", isolation="task"
    )
    async with Node(store=f"sqlite:///{tmp_path}/j.db") as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        with pytest.raises(SpecError, match="deadline"):
            await node.submit("poster", "post it", deadline=bad)  # type: ignore[arg-type]


def test_a_schedules_deadline_in_the_config_is_parsed_and_a_bad_one_named(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text(json.dumps({"turns": [{"text": "ok"}]}))
    good = """
[agents.poster]
instructions = "Post."
model = ["scripted:s.json", "scripted:s2.json"]
[[agents.poster.schedules]]
cron = "0 14 * * *"
task = "post"
deadline = "5m"
"""
    (tmp_path / "s2.json").write_text(json.dumps({"turns": [{"text": "ok"}]}))
    path = tmp_path / "beamish.toml"
    path.write_text(good)
    config = load_config(path)
    agent = config.agents["poster"]
    assert agent.fallbacks == (str(tmp_path / "s2.json").join(("scripted:", "")),)
    from beamish.company._config import schedule_entries

    ((_, schedule, _, _),) = schedule_entries(config)
    assert schedule.deadline_s == 300.0
    path.write_text(good.replace('deadline = "5m"', 'deadline = "whenever"'))
    with pytest.raises(ConfigError, match=r"agents\.poster\.schedules\[0\]\.deadline"):
        load_config(path)


async def test_runs_not_done_by_their_deadline_are_flagged_at_the_deadline_not_at_their_end(
    tmp_path: Path,
) -> None:
    """One run holds the agent (its model takes 10 minutes); the next waits in the queue. Past their
    deadlines the queued one is parked for a person and the running one raises ``run.overdue``."""
    clock = FakeClock()
    url = f"sqlite:///{tmp_path}/j.db"
    spec = AgentSpec(
        name="poster",
        instructions="Post the update.",
        model=f"scripted:{_script(tmp_path, 600.0)}",
        model_options={"clock": clock},
        isolation="task",
        watchdog=None,
    )
    async with Node(store=url, clock=clock) as node:
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        store = await open_store(url, clock=clock)
        try:
            busy = await node.submit("poster", "post the long one", deadline="20s")
            await wait_for(lambda: clock.sleepers > 0, what="the first run's model call")
            queued = await node.submit("poster", "post the next one", deadline="30s")
            clock.advance(31.0)

            async def flagged() -> bool:
                return (await store.get_run(queued)).status == "needs_attention"

            for _ in range(100):  # the node's sweep runs about once a second: wait for it, bounded
                if await flagged():
                    break
                await asyncio.sleep(0.05)
            assert await sweep_overdue(store, clock.time()) == [], "a second sweep finds nothing new"
            waiting, running = await store.get_run(queued), await store.get_run(busy)
            kinds = [(e.kind, e.subject) for _, e in await store.events() if e.kind.startswith("run.")]
        finally:
            await store.close()
    assert waiting.status == "needs_attention"
    assert "had not started" in str(waiting.reason) and "missed its deadline" in str(waiting.reason)
    assert running.status == "running" and "overdue_at" in running.meta
    assert ("run.needs_attention", queued) in kinds
    assert kinds.count(("run.overdue", busy)) == 1
