"""`beamish run --store … --node-id …` as two node processes; `beamish node list|drain`; `beamish status`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from _harness import eventually, holders

from beamish.cluster import list_nodes
from beamish.journal import open_store

pytestmark = pytest.mark.timeout(90)

BEAMISH = str(Path(sys.executable).parent / "beamish")

CONFIG = """
[store]
url = "{url}"

[memory]
file = "state/memory.jsonl"

[tree.groups.finance]
strategy = "rest_for_one"
agents = ["cfo", "accountant"]

[agents.cfo]
instructions = "You approve spending."
model = "scripted:answer.json"
isolation = "task"
price = {{ input_per_mtok = 3.0, output_per_mtok = 15.0 }}

[agents.accountant]
instructions = "You keep the books."
model = "scripted:answer.json"
isolation = "task"
price = {{ input_per_mtok = 1.0, output_per_mtok = 5.0 }}

[agents.marketing]
instructions = "You post."
model = "scripted:answer.json"
isolation = "process"
price = {{ input_per_mtok = 1.0, output_per_mtok = 5.0 }}

[agents.lawyer]
instructions = "You check."
model = "scripted:answer.json"
isolation = "task"
price = {{ input_per_mtok = 1.0, output_per_mtok = 5.0 }}
"""


async def beamish(*args: str, cwd: Path, timeout: float = 30) -> tuple[int, str]:
    env = {**os.environ, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        BEAMISH, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return int(proc.returncode or 0), out.decode()


async def test_two_beamish_run_nodes_share_the_agents_and_a_drained_one_hands_them_over(
    pg_url: str, tmp_path: Path
) -> None:
    (tmp_path / "beamish.toml").write_text(CONFIG.format(url=pg_url))
    (tmp_path / "answer.json").write_text(json.dumps({"turns": [{"text": "done: {task}"}]}))
    env = {**os.environ, "COLUMNS": "200"}
    procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(name: str) -> None:
        procs[name] = await asyncio.create_subprocess_exec(
            *(BEAMISH, "run", "beamish.toml", "--store", pg_url, "--node-id", name, "--lease", "1.5"),
            cwd=tmp_path,
            env=env,
            stdout=(tmp_path / f"{name}.out").open("w"),
            stderr=asyncio.subprocess.STDOUT,
        )

    store = await open_store(pg_url)
    try:

        async def held_by(*nodes: str) -> bool:
            held = await holders(store)
            return set(held) == {"finance", "marketing", "lawyer"} and set(held.values()) == set(nodes)

        async def settle(*nodes: str) -> None:
            try:
                await eventually(lambda: held_by(*nodes), 40, f"the three units spread over {nodes}")
            except AssertionError:
                logs = {n: (tmp_path / f"{n}.out").read_text()[-3000:] for n in procs}
                raise AssertionError(f"not spread: {await holders(store)}; node output: {logs}") from None

        await start("n1")
        await settle("n1")  # alone, it holds everything; a second node then gets its share
        await start("n2")
        await settle("n1", "n2")
        code, listed = await beamish("node", "list", "--store", pg_url, cwd=tmp_path)
        assert code == 0, listed
        assert "n1" in listed and "n2" in listed and "live" in listed and "finance" in listed
        code, status = await beamish("status", cwd=tmp_path)
        assert code == 0, status
        assert "n1" in status and "n2" in status  # which node holds what
        submitted = []
        for agent in ("lawyer", "marketing"):  # marketing runs in its own process
            code, out = await beamish("submit", agent, "check the contract", cwd=tmp_path)
            assert code == 0, out  # through the control socket of one node, to whichever holds it
            submitted.append(out.strip().splitlines()[-1])

        async def both_done() -> bool:
            found = [(await store.get_run(r)).status for r in submitted]
            return found == ["succeeded", "succeeded"]

        await eventually(both_done, 20, "the submitted runs served")

        drained_units = [u for u, n in (await holders(store)).items() if n == "n1"]
        code, out = await beamish("node", "drain", "n1", "--store", pg_url, cwd=tmp_path)
        assert code == 0, out
        assert "n1 drained" in out
        assert await asyncio.wait_for(procs["n1"].wait(), 20) == 0  # a drained `beamish run` exits

        async def n2_holds_all() -> bool:
            return set((await holders(store)).values()) == {"n2"}

        await eventually(n2_holds_all, 10, "n2 holding every unit")
        runs = []
        for unit in drained_units:
            agent = "cfo" if unit == "finance" else unit
            run, _ = await store.create_run(agent, f"after drain {unit}")
            runs.append(run.run_id)

        async def served() -> bool:
            found = [(await store.get_run(r)).status for r in runs]
            return found == ["succeeded"] * len(runs)

        await eventually(served, 20, "the drained node's agents serving on n2")
        nodes = {n.node_id: n for n in await list_nodes(store)}
        assert nodes["n1"].state == "stopped" and nodes["n1"].units == ()
        assert set(nodes["n2"].units) == {"finance", "marketing", "lawyer"}
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await store.close()
    assert procs["n2"].returncode == 0


async def test_draining_a_node_that_never_joined_names_it(pg_url: str, tmp_path: Path) -> None:
    code, out = await beamish("node", "drain", "ghost", "--store", pg_url, cwd=tmp_path)
    assert code == 1
    assert "no node 'ghost'" in out
