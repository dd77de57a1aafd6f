"""A node's part in a cluster: join, heartbeat, hold units by lease, fail over, drain.

N identical nodes run on one PostgreSQL store. Each has a :class:`ClusterNode` whose heartbeat, every
``lease_s / 3`` seconds, in one transaction marks its row alive and renews the leases it holds, and
stops at once the units whose lease it lost (it was paused or cut off while another node took them: its
copies must not go on). Expiry is decided on the store's clock (the database's on PostgreSQL), so nodes
need not agree on the time; a node keeps its own, conservative reckoning on its monotonic clock from the
moment it *sent* each renewal, and a guard stops a unit whose renewal is overdue before the store could
count its lease as run out (a node cut off from the store stops acting within its lease). A separate
placer task, woken by each heartbeat, claims the node's fair share of free or expired units and starts
them under its own ``placed`` supervisor, hands one over while another node holds two fewer, and on a
drain stops and releases its units one by one, so the others take them straight away. Starting a unit
never delays a renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from beamish._events import Event
from beamish._exceptions import SpecError
from beamish._tasks import cancel_and_wait
from beamish.agent._runs import runs_of
from beamish.cluster import _membership as members
from beamish.cluster import _placement as placement
from beamish.journal import Lease, Store, SyncTx
from beamish.runtime import ChildSpec, Node, SupervisorRef, SupervisorSpec

logger = logging.getLogger("beamish.cluster")

#: How much of a lease a node acts on without a renewal; the rest covers stopping the unit and any
#: difference in clock rates (not offsets) between this machine and the database.
LAPSE_FRACTION = 0.8

#: The NOTIFY channel a submission wakes the agent's holder on (polling is the fallback).
WAKE_CHANNEL = "beamish_cluster_wake"


@dataclass(frozen=True)
class Unit:
    """What one lease holds: a top-level agent or a group, started as ``child`` on its holder."""

    name: str
    child: ChildSpec
    agents: tuple[str, ...]


class ClusterNode:
    """Holds units for ``node`` (whose agents journal to ``store``, a PostgreSQL store in production).

    ``lease_s`` is the trade-off: a dead node's agents move after at most ~``lease_s`` (plus one
    renewal period), and each node writes its heartbeat and renewals ``3 / lease_s`` times a second.
    """

    def __init__(
        self,
        node: Node,
        store: Store,
        units: Sequence[Unit],
        *,
        node_id: str | None = None,
        lease_s: float = 10.0,
        intensity: int = 3,
        period: float = 5.0,
    ) -> None:
        if not lease_s > 0:
            raise SpecError(f"lease_s must be > 0, got {lease_s!r}")
        names = [u.name for u in units]
        if len(set(names)) != len(names):
            raise SpecError(f"unit names must be unique, got {names}")
        self.node = node
        self.store = store
        self.units: dict[str, Unit] = {u.name: u for u in units}
        self.node_id = members.check_node_id(members.default_node_id() if node_id is None else node_id)
        self.lease_s = float(lease_s)
        self.renew_every_s = self.lease_s / 3
        self.held: dict[str, Lease] = {}
        #: Per held unit, the loop time by which it stops unless renewed: the renewal's send time plus
        #: ``lapse_s``, earlier than the store's expiry (which counts from the renewal's arrival).
        self.valid_until: dict[str, float] = {}
        self.lapse_s = self.lease_s * LAPSE_FRACTION
        self.state = "live"
        self.drained = asyncio.Event()
        self.changed = asyncio.Event()  # set after every tick that changed what this node holds
        self._intensity, self._period = intensity, period
        self._placed: SupervisorRef | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakes: asyncio.Task[None] | None = None
        self._placing: asyncio.Task[None] | None = None
        self._guarding: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._drain_asked = False
        self._stopping: dict[str, asyncio.Task[None]] = {}
        self._agents = {a: u.name for u in units for a in u.agents}

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Join the cluster and take a first share of units before returning."""

        def join(tx: SyncTx) -> None:
            members.register(tx, self.node_id, self.lease_s, self.store.tx_now(tx))
            placement.ensure_units(tx, list(self.units))

        await self.store.run(join)
        spec = SupervisorSpec([], strategy="one_for_one", intensity=self._intensity, period=self._period)
        self._placed = await self.node.start_supervisor(spec, name=f"placed@{self.node_id}")
        reg = runs_of(self.node)
        reg.remote.update(self._agents)
        reg.remote_wake = self._wake_holder
        await self._event("cluster.node_joined", self.node_id, {"lease_s": self.lease_s})
        await self.tick()
        self._task = asyncio.create_task(self._run(), name=f"beamish-cluster-{self.node_id}")
        await self._place()  # a first share before returning; the placer takes over from here
        self._placing = asyncio.create_task(self._placer(), name=f"beamish-cluster-place-{self.node_id}")
        self._guarding = asyncio.create_task(self._guard(), name=f"beamish-cluster-guard-{self.node_id}")
        self._wakes = asyncio.create_task(self._listen(), name=f"beamish-cluster-wake-{self.node_id}")

    async def stop(self) -> None:
        """Leave cleanly: stop the units, release their leases (others take them at once), mark stopped."""
        runs = runs_of(self.node)
        if runs.remote_wake == self._wake_holder:
            runs.remote_wake = None
        for task in (self._placing, self._wakes):
            await cancel_and_wait(task)
        self._placing = self._wakes = None
        for stopping in list(self._stopping.values()):
            await cancel_and_wait(stopping, grace_s=math.inf)  # a unit's stop already under way ends
        for unit in list(self.held):  # the heartbeat still renews what is not yet handed over
            await self._hand_over(unit)
        for task in (self._task, self._guarding):
            await cancel_and_wait(task)
        self._task = self._guarding = None
        with contextlib.suppress(Exception):
            await self.store.run(self._beat("stopped"))
        if self._placed is not None and self._placed.alive:
            await self._placed.stop()
        self._placed = None

    async def drain(self) -> None:
        """Hand every unit over to the other nodes and hold none from now on (as ``node drain`` asks,
        through the store); returns once drained. Call it after :meth:`start`."""
        self._drain_asked = True
        self._kick.set()
        await self.drained.wait()

    def _beat(self, state: str) -> Callable[[SyncTx], bool]:
        return lambda tx: members.heartbeat(tx, self.node_id, self.store.tx_now(tx), state)

    async def _drain(self) -> None:
        self.state = "draining"
        await self.store.run(self._beat("draining"))
        await self._event("cluster.draining", self.node_id, {"units": sorted(self.held)})
        for unit in list(self.held):
            await self._hand_over(unit)
        self.state = "drained"
        self._note_change()
        await self.store.run(self._beat("drained"))
        await self._event("cluster.drained", self.node_id, {})
        self.drained.set()

    # -- runs -----------------------------------------------------------------------------------------
    async def submit(
        self, agent: str, task: Any, run_id: str | None = None, *, deadline: float | str | None = None
    ) -> str:
        """Give ``agent`` a task wherever it is held; ``run_id`` is the idempotency key; ``deadline``
        (seconds or ``"5m"`` from now) is when it must be done by."""
        if agent not in self._agents:
            raise SpecError(
                f"no agent named {agent!r} in this cluster (known: {', '.join(sorted(self._agents))})"
            )
        submitted: str = await self.node.submit(agent, task, run_id, deadline=deadline)  # the one path
        return submitted

    async def _wake_holder(self, agent: str) -> None:
        """Tell the node that holds ``agent`` (whichever it is) that a run was submitted to it."""
        await self.store.notify(WAKE_CHANNEL, agent)

    async def _listen(self) -> None:
        """Wake local agents when another node submitted to them (the registry's poll is the fallback)."""
        while True:
            try:
                async for agent in self.store.listen(WAKE_CHANNEL):
                    if self._agents.get(agent) in self.held:
                        runs_of(self.node).wake(agent)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: listen again after a pause
                logger.warning("cluster %s: wake-ups unavailable (%s); polling meanwhile", self.node_id, exc)
                await asyncio.sleep(self.renew_every_s)

    # -- the loop -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        """Heartbeats on a fixed period. Starting and stopping units happens in the placer task, so a
        slow start (a process agent on a busy machine) never delays a renewal."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.renew_every_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at, loop.time())  # after a pause, carry on from now (no catch-up burst)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store is unreachable: the guard stops what lapses
                logger.warning("cluster %s: heartbeat failed: %s", self.node_id, exc)

    async def _guard(self) -> None:
        """Stop each unit whose renewal is overdue by this node's own monotonic reckoning: with no
        store to ask, a lease that may have run out may already be held elsewhere."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            for unit, lease in list(self.held.items()):
                if self.valid_until.get(unit, math.inf) <= now:
                    self._lost(unit, lease, "its lease ran out while the store was unreachable")
            soonest = min((self.valid_until.get(u, math.inf) for u in self.held), default=math.inf)
            await asyncio.sleep(min(self.renew_every_s, max(0.001, soonest - now)))

    async def _placer(self) -> None:
        """Claims, starts, spreads and drains, one step at a time, whenever a heartbeat asks."""
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                if self._drain_asked and self.state == "live":
                    await self._drain()
                elif self.state == "live":
                    await self._place()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store hiccupped: the next heartbeat asks again
                logger.warning("cluster %s: placement failed: %s", self.node_id, exc)

    async def tick(self) -> None:
        """One heartbeat: renew every held lease, give up at once what was lost, then ask the placer
        to drain (if asked) or take a fair share and spread."""
        held, state = dict(self.held), self.state

        def beat(tx: SyncTx) -> tuple[bool, dict[str, Lease], list[str]]:
            now = self.store.tx_now(tx)
            drain = members.heartbeat(tx, self.node_id, now, state)
            kept, lost = placement.renew(tx, held, now + self.lease_s)
            return drain, kept, lost

        if self._placed is None or not self._placed.alive:
            await self._replace_placed()
            return
        # a store that hangs (a partition) counts as a failed beat; the guard stops what lapses
        sent = asyncio.get_running_loop().time()
        drain, kept, lost = await asyncio.wait_for(self.store.run(beat), self.lease_s / 2)
        for unit, lease in kept.items():  # what the placer changed meanwhile keeps its own lease
            if unit in self.held and self.held[unit].epoch == lease.epoch:
                self.held[unit] = lease
                self.valid_until[unit] = sent + self.lapse_s
        for unit in lost:
            if unit in self.held and self.held[unit].epoch == held[unit].epoch:
                self._lost(unit, held[unit], "another node holds it now")
        self._drain_asked = self._drain_asked or drain
        self._kick.set()

    async def _replace_placed(self) -> None:
        """The placed units' supervisor gave up (its restart intensity was exceeded): release every
        lease it held, so the units start afresh (here or elsewhere), and start a new one."""
        logger.error("cluster %s: the placed units' supervisor exited; releasing its units", self.node_id)
        held, self.held = self.held, {}
        for unit in held:
            for agent in self.units[unit].agents:
                runs_of(self.node).leases.pop(agent, None)
        await self.store.run(lambda tx: [placement.release(tx, lease) for lease in held.values()])
        for unit, lease in held.items():
            await self._event("lease.released", unit, {"node": self.node_id, "epoch": lease.epoch})
        self._note_change()
        spec = SupervisorSpec([], strategy="one_for_one", intensity=self._intensity, period=self._period)
        self._placed = await self.node.start_supervisor(spec, name=None)

    async def _place(self) -> None:
        units = list(self.units)

        def look(tx: SyncTx) -> tuple[list[members.NodeInfo], dict[str, int]]:
            now = self.store.tx_now(tx)
            return members.fetch_nodes(tx, now, placement.PREFIX), placement.load(tx, units, now)

        nodes, load = await self.store.read(look)
        serving = [n for n in nodes if n.serving or n.node_id == self.node_id]
        share = placement.fair_share(len(units), len(serving))
        if len(self.held) < share:
            candidates = {u: self.units[u].agents for u in units if u not in self.held}
            want = share - len(self.held)

            def take(tx: SyncTx) -> list[tuple[str, Lease]]:
                now = self.store.tx_now(tx)
                return placement.claim(tx, self.node_id, candidates, want, now, self.lease_s)

            sent = asyncio.get_running_loop().time()
            for unit, lease in await self.store.run(take):
                await self._start(unit, lease, sent + self.lapse_s)
        else:
            others = [load.get(n.node_id, 0) for n in serving if n.node_id != self.node_id]
            if others and len(self.held) - min(others) >= 2:
                # one per round; the least loaded node (below its share) claims it. Each move narrows
                # the spread, so this settles, e.g. 4 units on 3 nodes as 2/1/1, never bouncing.
                await self._hand_over(sorted(self.held)[-1])

    async def _start(self, unit: str, lease: Lease, valid_until: float) -> None:
        self.held[unit] = lease  # renewed from now on, while the unit starts
        self.valid_until[unit] = valid_until
        self._note_change()
        stopping = self._stopping.get(unit)
        if stopping is not None:  # a copy we lost earlier is still being stopped
            await asyncio.shield(stopping)
        held = self.held.get(unit)
        if held is None or held.epoch != lease.epoch:  # lost while the old copy was stopping
            return
        if asyncio.get_running_loop().time() >= self.valid_until.get(unit, valid_until):
            self._lost(unit, held, "its lease ran out before its copy could start")  # may be taken
            return
        reg = runs_of(self.node)
        for agent in self.units[unit].agents:
            reg.leases[agent] = lease
        await self._event("lease.acquired", unit, {"node": self.node_id, "epoch": lease.epoch})
        assert self._placed is not None
        try:
            await self._placed.start_child(self.units[unit].child)
        except Exception as exc:
            logger.error("cluster %s: unit %s did not start: %s; releasing it", self.node_id, unit, exc)
            await self._hand_over(unit)

    async def _stop_unit(self, unit: str) -> None:
        reg = runs_of(self.node)
        for agent in self.units[unit].agents:
            reg.leases.pop(agent, None)
            reg.refs.pop(agent, None)
        if self._placed is not None and self._placed.alive:
            with contextlib.suppress(Exception):
                await self._placed.terminate_child(unit)
            with contextlib.suppress(Exception):
                await self._placed.delete_child(unit)

    async def _hand_over(self, unit: str) -> None:
        """Stop the unit here (its lease still renewed meanwhile), then release the lease: the next
        holder starts it only after this copy stopped."""
        await self._stop_unit(unit)
        lease = self.held.pop(unit, None)
        self._note_change()
        if lease is not None:
            with contextlib.suppress(Exception):
                await self.store.run(lambda tx: placement.release(tx, lease))
            await self._event("lease.released", unit, {"node": self.node_id, "epoch": lease.epoch})

    def _lost(self, unit: str, lease: Lease, why: str) -> None:
        """Another node holds ``unit`` now: stop our copy at once (in the background)."""
        self.held.pop(unit, None)
        self._note_change()
        logger.warning("cluster %s: lost unit %s (%s); stopping its copy here", self.node_id, unit, why)
        if unit in self._stopping:
            return

        async def stop() -> None:
            try:
                await self._stop_unit(unit)
                await self._event(
                    "lease.lost", unit, {"node": self.node_id, "epoch": lease.epoch, "why": why}
                )
            finally:
                self._stopping.pop(unit, None)

        self._stopping[unit] = asyncio.create_task(stop(), name=f"beamish-cluster-stop-{unit}")

    def _note_change(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def _event(self, kind: str, subject: str, data: Mapping[str, Any]) -> None:
        event = Event(kind, subject, dict(data))
        self.node.emit(event)
        with contextlib.suppress(Exception):
            await self.store.append_event(event)
