"""Leases, fencing and placement in one process: deterministic checks of what the node tests rely on."""

from __future__ import annotations

import asyncio
import os

import pytest
from _harness import eventually

from beamish import SpecError
from beamish.cluster import ClusterNode, Unit, list_nodes
from beamish.cluster import _membership as members
from beamish.cluster import _placement as placement
from beamish.errors import Fenced
from beamish.journal import Lease, Store, open_store
from beamish.runtime import Actor, ChildSpec, Node
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(30)


class Idle(Actor):
    """A unit's stand-in: it only has to start and stop."""


async def ops_held_by_n1(store_url: str) -> tuple[Store, FakeClock, Lease]:
    """A store on a fake clock at 1 000 s whose unit ``ops`` node n1 has just claimed for 2 s."""
    clock = FakeClock()
    clock.set_wall(1_000.0)
    store = await open_store(store_url, clock=clock)
    await store.run(lambda tx: placement.ensure_units(tx, ["ops"]))
    [(_, lease)] = await store.run(lambda tx: placement.claim(tx, "n1", {"ops": ["ops"]}, 1, 1_000.0, 2.0))
    return store, clock, lease


async def test_a_node_that_lost_a_units_lease_can_neither_claim_its_runs_nor_write_to_them(
    store_url: str,
) -> None:
    store, _clock, old = await ops_held_by_n1(store_url)
    try:
        run, _ = await store.create_run("ops", "task")
        epoch = await store.claim_run(run.run_id, "ops@n1", lease=old)
        await store.update_run(run.run_id, status="running", epoch=epoch)
        # n1 pauses past its lease; n2 takes the unit over (its claim fences the running run)
        [(_, new)] = await store.run(lambda tx: placement.claim(tx, "n2", {"ops": ["ops"]}, 1, 1_003.0, 2.0))
        assert new.epoch == old.epoch + 1
        with pytest.raises(Fenced):
            await store.update_run(run.run_id, output="late", epoch=epoch)
        with pytest.raises(Fenced):
            await store.claim_run(run.run_id, "ops@n1", lease=old)
        kept, lost = await store.run(lambda tx: placement.renew(tx, {"ops": old}, 1_005.0))
        assert (kept, lost) == ({}, ["ops"])
        assert await store.claim_run(run.run_id, "ops@n2", lease=new) == epoch + 2
        assert (await store.get_run(run.run_id)).output is None  # nothing of n1's landed
    finally:
        await store.close()


async def test_a_run_is_not_claimed_under_a_lease_that_ran_out_though_nobody_took_it(
    store_url: str,
) -> None:
    """A node cut off past its lease may still have an agent copy that has not stopped yet; even with
    no other holder, the expired lease no longer entitles it to take a run."""
    store, clock, lease = await ops_held_by_n1(store_url)
    try:
        run, _ = await store.create_run("ops", "task")
        assert await store.claim_run(run.run_id, "ops@n1", lease=lease) == 1
        clock.advance(2.0)
        with pytest.raises(Fenced, match="has run out"):
            await store.claim_run(run.run_id, "ops@n1", lease=lease)
    finally:
        await store.close()


async def test_concurrent_claimers_skip_locked_rows_and_never_take_the_same_unit(pg_url: str) -> None:
    units = {f"u{i}": [f"a{i}"] for i in range(40)}
    stores: list[Store] = [await open_store(pg_url) for _ in range(4)]
    try:
        await stores[0].run(lambda tx: placement.ensure_units(tx, list(units)))

        async def claimer(store: Store, owner: str) -> list[str]:
            taken: list[str] = []
            while True:
                now = store.clock.time()
                got = await store.run(lambda tx, now=now: placement.claim(tx, owner, units, 3, now, 30.0))
                if not got:
                    free = await store.fetchone("SELECT COUNT(*) AS n FROM leases WHERE owner IS NULL")
                    if free is not None and int(free["n"]) == 0:
                        return taken
                taken.extend(u for u, _ in got)

        results = await asyncio.gather(*(claimer(s, f"n{i}") for i, s in enumerate(stores)))
    finally:
        for s in stores:
            await s.close()
    everything = [u for r in results for u in r]
    assert sorted(everything) == sorted(units)  # each unit once, none left over


async def test_nodes_spread_units_evenly_and_a_stopped_node_hands_its_share_over_at_once(
    pg_url: str,
) -> None:
    units = [Unit(f"u{i}", ChildSpec(f"u{i}", Idle), ()) for i in range(5)]
    store = await open_store(pg_url)
    async with Node(name="a") as node_a, Node(name="b") as node_b:
        a = ClusterNode(node_a, store, units, node_id="a", lease_s=0.6)
        b = ClusterNode(node_b, store, units, node_id="b", lease_s=0.6)
        try:
            await a.start()
            assert len(a.held) == 5  # alone: everything
            await b.start()

            async def even() -> bool:
                return sorted([len(a.held), len(b.held)]) == [2, 3]

            await eventually(even, 10, "5 units spread 3/2")
            assert set(a.held).isdisjoint(b.held)
            running = [c.id for c in await a._placed.which_children()] if a._placed else []
            assert sorted(running) == sorted(a.held)  # held means started here, and only that
            await a.stop()

            async def b_has_all() -> bool:
                return len(b.held) == 5

            took = await eventually(b_has_all, 5, "b holding every unit")
            assert took < 0.6  # released, not left to expire: the next renewal round takes them
            nodes = {n.node_id: n for n in await list_nodes(store)}
            assert nodes["a"].state == "stopped" and not nodes["a"].alive
            assert len(nodes["b"].units) == 5
        finally:
            await b.stop()
            await a.stop()
            await store.close()


async def test_a_third_node_joining_gets_a_share_until_no_node_holds_two_more_than_another(
    pg_url: str,
) -> None:
    units = [Unit(f"u{i}", ChildSpec(f"u{i}", Idle), ()) for i in range(4)]
    store = await open_store(pg_url)
    async with Node(name="a") as na, Node(name="b") as nb, Node(name="c") as nc:
        nodes = [ClusterNode(n, store, units, node_id=n.name, lease_s=0.6) for n in (na, nb, nc)]
        try:
            for cluster in nodes:
                await cluster.start()

            async def settled() -> bool:
                return sorted(len(c.held) for c in nodes) == [1, 1, 2]

            await eventually(settled, 10, "4 units spread 2/1/1")
            held = [u for c in nodes for u in c.held]
            assert sorted(held) == sorted(u.name for u in units)
        finally:
            for cluster in nodes:
                await cluster.stop()
            await store.close()


async def test_a_node_cut_off_from_the_store_stops_its_units_before_their_leases_run_out(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Self-fencing: with no store, no renewal — and once a lease runs out the unit may start
    elsewhere, so it stops here first, though nobody told this node (its reckoning counts from when
    it sent the last renewal, on its own monotonic clock)."""
    units = [Unit(f"u{i}", ChildSpec(f"u{i}", Idle), ()) for i in range(2)]
    store = await open_store(pg_url)
    async with Node(name="a") as node:
        cluster = ClusterNode(node, store, units, node_id="a", lease_s=0.6)
        try:
            await cluster.start()
            assert len(cluster.held) == 2

            async def unreachable(fn: object) -> None:
                raise OSError("connection refused (the network is cut)")

            monkeypatch.setattr(store, "run", unreachable)

            async def stopped() -> bool:
                assert cluster._placed is not None
                return not cluster.held and not await cluster._placed.which_children()

            await eventually(stopped, 5, "the units stopped")
            now = await store.read(store.tx_now)  # the database's clock, which decides expiry
            rows = await store.fetchall("SELECT expires_at FROM leases WHERE name LIKE 'unit:%'")
            assert now < min(float(r["expires_at"]) for r in rows)  # stopped within the lease
            monkeypatch.undo()
        finally:
            await cluster.stop()
            await store.close()


async def test_a_node_id_a_live_node_of_another_process_uses_is_refused(store_url: str) -> None:
    store = await open_store(store_url)
    try:
        now = store.clock.time()
        await store.execute(
            "INSERT INTO cluster_nodes (node_id, host, pid, state, drain, started_at, heartbeat_at, lease_s) "
            "VALUES ('busy', 'elsewhere', ?, 'live', 0, ?, ?, 10)",
            (os.getpid() + 1, now, now),
        )
        with pytest.raises(SpecError, match="'busy' is in use by a live node"):
            await store.run(lambda tx: members.register(tx, "busy", 10.0, now))
        await store.run(lambda tx: members.register(tx, "busy", 10.0, now + 11))  # once it is dead
    finally:
        await store.close()


async def test_bad_cluster_settings_are_refused_by_name() -> None:
    async with Node() as node:
        with pytest.raises(SpecError, match="lease_s"):
            ClusterNode(node, None, [], lease_s=0)  # type: ignore[arg-type]
        with pytest.raises(SpecError, match="unique"):
            ClusterNode(node, None, [Unit("x", ChildSpec("x", Idle), ())] * 2)  # type: ignore[arg-type]
        with pytest.raises(SpecError, match="node id"):
            ClusterNode(node, None, [], node_id="")  # type: ignore[arg-type]


def test_the_fair_share_spreads_units_as_evenly_as_possible() -> None:
    assert [placement.fair_share(7, n) for n in (0, 1, 2, 3, 7, 8)] == [7, 7, 4, 3, 1, 1]


async def test_a_clusters_agent_started_without_a_lease_here_claims_no_run(
    store_url: str, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A cluster's agent whose copy starts on a node that holds no lease for it (its supervisor
    restarted it while the unit was being stopped) is fenced like a stale holder: it claims nothing."""
    import json
    from pathlib import Path

    from beamish import AgentSpec
    from beamish.agent._runs import runs_of
    from beamish.runtime import SupervisorSpec
    from beamish.testing import wait_for

    script = Path(str(tmp_path)) / "ops.json"
    script.write_text(json.dumps({"turns": [{"text": "done"}]}))
    spec = AgentSpec("ops", "Do it.", f"scripted:{script}", isolation="task")
    async with Node(store=store_url) as node:
        runs_of(node).remote.add("ops")  # a cluster's agent; this node holds no lease for it
        await node.start_supervisor(SupervisorSpec([spec.child_spec()]))
        run_id = await node.submit("ops", "task")
        await wait_for(lambda: "not claimed" in caplog.text, 10, "the claim to be refused")
        store = await open_store(store_url)
        try:
            assert (await store.get_run(run_id)).status == "queued"
        finally:
            await store.close()
