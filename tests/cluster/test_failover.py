"""Failover with node processes on the real PostgreSQL: SIGKILL, SIGSTOP/SIGCONT (split brain), drain.

Each test starts 2 or 3 node processes (tests/cluster/_node_main.py) with short leases, submits runs
whose one side effect goes to a shared log, and checks every run finished once and no effect or
schedule tick happened twice.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest
from _harness import Cluster, add_missed_schedule, eventually, holders, statuses

from beamish.cluster import request_drain
from beamish.journal import Store, open_store

pytestmark = pytest.mark.timeout(60)


async def submit(store: Store, agent: str, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        run, _ = await store.create_run(agent, f"{tag} {i}", run_id=f"{tag}-{agent}-{i}")
        ids.append(run.run_id)
    await store.notify("beamish_cluster_wake", agent)
    return ids


def effects_per_run(cluster: Cluster) -> Counter[str]:
    lines = cluster.effect_log.read_text().splitlines() if cluster.effect_log.exists() else []
    return Counter(line.split()[0].rsplit(":", 1)[0] for line in lines)


async def all_finished(store: Store, timeout: float = 30.0) -> dict[str, str]:
    async def done() -> bool:
        return set((await statuses(store)).values()) <= {"succeeded", "failed", "needs_attention"}

    await eventually(done, timeout, "every run finished")
    return await statuses(store)


async def spread(store: Store, nodes: int, units: int) -> dict[str, str | None]:
    async def even() -> bool:
        held = await holders(store)
        counts = Counter(held.values())
        return len(held) == units and None not in counts and len(counts) == nodes

    await eventually(even, 20, f"{units} units spread over {nodes} nodes")
    return await holders(store)


async def a_run_is_running_on(store: Store, agents: list[str]) -> bool:
    marks = ",".join("?" * len(agents))
    row = await store.fetchone(
        f"SELECT COUNT(*) AS n FROM runs WHERE status = 'running' AND agent IN ({marks})", agents
    )
    return row is not None and int(row["n"]) > 0


async def test_a_sigkilled_nodes_agents_run_on_the_others_within_lease_plus_one_second(
    pg_url: str, tmp_path: Path
) -> None:
    lease_s = 1.5
    store = await open_store(pg_url)
    try:
        await add_missed_schedule(store, "a0", minutes=4)
        async with Cluster(pg_url, tmp_path, agents=6, lease_s=lease_s) as cluster:
            await cluster.start("n1", "n2", "n3")
            before = await spread(store, 3, 6)
            runs = [rid for i in range(6) for rid in await submit(store, f"a{i}", 4, "task")]
            victim = before["a0"]
            assert victim is not None
            theirs = [u for u, node in before.items() if node == victim]
            await eventually(lambda: a_run_is_running_on(store, theirs), 20, "the victim busy")
            cluster.nodes[victim].signal(signal.SIGKILL)

            async def taken_over() -> bool:
                now = await holders(store)
                return all(now[u] not in (None, victim) for u in theirs)

            took = await eventually(taken_over, lease_s + 5, "the victim's units held by the others")
            assert took < lease_s + 1.0, f"failover took {took:.2f}s (lease {lease_s}s)"
            final = await all_finished(store)
            fires = await store.fetchall("SELECT run_id FROM schedule_fires WHERE action = 'fire'")
    finally:
        await store.close()
    scheduled = [str(f["run_id"]) for f in fires]
    assert len(scheduled) >= 4 and len(set(scheduled)) == len(scheduled)  # each tick fired once
    assert set(final) == set(runs) | set(scheduled)
    assert set(final.values()) == {"succeeded"}
    assert effects_per_run(cluster) == Counter(dict.fromkeys(final, 1))  # no effect twice, none lost


@pytest.mark.parametrize("isolation", ["task", "process"])
async def test_a_paused_node_that_lost_its_lease_is_fenced_stops_its_copies_and_duplicates_nothing(
    pg_url: str, tmp_path: Path, isolation: str
) -> None:
    """With process isolation only the node process is paused: its agent processes go on running,
    and it is the fence (the lease check on claim, the run epochs bumped on takeover) that stops them."""
    lease_s = 1.0
    store = await open_store(pg_url)
    try:
        async with Cluster(pg_url, tmp_path, agents=2, lease_s=lease_s, isolation=isolation) as cluster:
            await cluster.start("n1", "n2")
            before = await spread(store, 2, 2)
            zombie = before["a0"]
            assert zombie is not None
            other = "n2" if zombie == "n1" else "n1"
            runs = await submit(store, "a0", 8, "work") + await submit(store, "a1", 4, "work")
            await eventually(lambda: a_run_is_running_on(store, ["a0"]), 20, "a0 busy")
            cluster.nodes[zombie].signal(signal.SIGSTOP)

            async def other_holds_all() -> bool:
                return set((await holders(store)).values()) == {other}

            await eventually(other_holds_all, lease_s + 5, f"{other} holding every unit")

            async def served_by_other() -> bool:
                row = await store.fetchone(
                    "SELECT COUNT(*) AS n FROM runs WHERE agent = 'a0' AND status = 'succeeded' "
                    "AND lease_owner LIKE 'a0@%'"
                )
                return row is not None and int(row["n"]) >= 1 and (await holders(store))["a0"] == other

            await eventually(served_by_other, 20, "a0's runs going on at the other node")
            cluster.nodes[zombie].signal(signal.SIGCONT)
            # it notices at its next heartbeat: its renewal is refused and it drops its copy of a0
            await cluster.nodes[zombie].wait_line(
                lambda line: line.get("held") == [], 10, "its units dropped"
            )
            final = await all_finished(store)
            lost = await store.fetchall(
                "SELECT body FROM events WHERE kind = 'lease.lost' AND subject = 'a0'"
            )
    finally:
        await store.close()
    assert len(lost) == 1 and zombie in str(lost[0]["body"])
    assert set(final) == set(runs) and set(final.values()) == {"succeeded"}
    assert effects_per_run(cluster) == Counter(dict.fromkeys(runs, 1))


async def test_a_drained_node_hands_its_agents_over_and_their_new_runs_complete(
    pg_url: str, tmp_path: Path
) -> None:
    store = await open_store(pg_url)
    try:
        async with Cluster(pg_url, tmp_path, agents=4, lease_s=1.5) as cluster:
            await cluster.start("n1", "n2")
            await spread(store, 2, 4)
            first = [rid for i in range(4) for rid in await submit(store, f"a{i}", 2, "before")]
            info = await request_drain(store, "n1")
            assert info.drain
            await cluster.nodes["n1"].wait_line(lambda line: line.get("state") == "drained", 10, "drained")

            async def n2_holds_all() -> bool:
                return set((await holders(store)).values()) == {"n2"}

            await eventually(n2_holds_all, 5, "n2 holding every unit")
            then = [rid for i in range(4) for rid in await submit(store, f"a{i}", 2, "after")]
            final = await all_finished(store)
            assert cluster.nodes["n1"].held == []
    finally:
        await store.close()
    assert set(final) == set(first + then) and set(final.values()) == {"succeeded"}
    assert effects_per_run(cluster) == Counter(dict.fromkeys(first + then, 1))


async def test_consults_cross_nodes_and_survive_the_consulted_node_being_killed(
    pg_url: str, tmp_path: Path
) -> None:
    """a0 on one node consults a1 on the other; the node holding a1 is SIGKILLed while consults are
    pending: a1 moves, every consult is answered once, every asking run succeeds."""
    asker = tmp_path / "asker.json"
    asker.write_text(
        json.dumps(
            {
                "turns": [
                    {"tool_calls": [{"name": "consult", "arguments": {"agent": "a1", "question": "ok?"}}]},
                    {"text": "decided: {last_tool}"},
                ]
            }
        )
    )
    lease_s = 1.5
    store = await open_store(pg_url)
    try:
        async with Cluster(
            pg_url, tmp_path, agents=2, lease_s=lease_s, delay_s=0.2, scripts={"a0": str(asker)}
        ) as cluster:
            await cluster.start("n1", "n2")
            before = await spread(store, 2, 2)
            runs = await submit(store, "a0", 4, "plan")
            await eventually(lambda: a_run_is_running_on(store, ["a1"]), 20, "a1 answering a consult")
            victim = before["a1"]
            assert victim is not None and victim != before["a0"]
            cluster.nodes[victim].signal(signal.SIGKILL)
            final = await all_finished(store, timeout=40)
    finally:
        await store.close()
    asked = {rid: s for rid, s in final.items() if rid not in runs}
    assert {final[r] for r in runs} == {"succeeded"}
    assert len(asked) == 4 and set(asked.values()) == {"succeeded"}  # one consult run per asking run
    assert effects_per_run(cluster) == Counter(dict.fromkeys(asked, 1))  # a1 posted once per consult
