"""A company on many machines: ``beamish run CONFIG --store postgresql://… --node-id NAME``.

Every node builds the same tree from the same config. The services (the memory server, the
scheduler) run on every node — the scheduler fires each tick once cluster-wide by its unique key —
while each top-level agent and each group becomes a *unit* that exactly one node holds by lease and
starts under its own ``placed`` supervisor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from beamish.cluster._node import ClusterNode, Unit
from beamish.company._control import ControlServer, control_path
from beamish.runtime import ChildSpec, SupervisorSpec

logger = logging.getLogger("beamish.cluster")

#: The default lease period of ``beamish run`` on a cluster (see the README: failover vs. load).
DEFAULT_LEASE_S = 10.0


class CompanyCluster:
    """The cluster side of a running :class:`~beamish.company.Company` (its ``cluster=`` argument)."""

    def __init__(
        self,
        node_id: str | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        *,
        on_drained: Callable[[], object] | None = None,
    ) -> None:
        """``on_drained`` is called once the node has handed everything over (``beamish run`` exits)."""
        self.node_id = node_id
        self.lease_s = lease_s
        self.on_drained = on_drained
        self._watch: asyncio.Task[None] | None = None
        self._control: Any = None
        self.units: list[Unit] = []
        self.node: ClusterNode | None = None
        self._tree: SupervisorSpec | None = None

    def split(self, company: Any, spec: SupervisorSpec) -> SupervisorSpec:
        """Keep the services in the root; every other top-level child becomes a unit placed by lease."""
        services = set(company.parts.service_names())
        groups = company.config.file.tree.groups
        keep: list[ChildSpec] = []
        self.units = []
        for child in spec.children:
            cid = str(child.id)
            if cid in services:
                keep.append(child)
            elif cid in groups:
                self.units.append(Unit(cid, child, tuple(groups[cid].agents)))
            else:
                self.units.append(Unit(cid, child, (cid,)))
        self._tree = spec
        return SupervisorSpec(
            keep,
            strategy=spec.strategy,
            intensity=spec.intensity,
            period=spec.period,
            auto_shutdown=spec.auto_shutdown,
        )

    async def start(self, company: Any) -> None:
        """Join the cluster and take this node's share of the units."""
        assert self._tree is not None, "split() the tree before start()"
        self.node = ClusterNode(
            company.node,
            company.store,
            self.units,
            node_id=self.node_id,
            lease_s=self.lease_s,
            intensity=max(3, self._tree.intensity),
            period=self._tree.period,
        )
        await self.node.start()
        await self._serve_control(company)
        if self.on_drained is not None:
            self._watch = asyncio.create_task(self._when_drained(self.node, self.on_drained))
        logger.info("node %s joined, holding %s", self.node.node_id, sorted(self.node.held))

    async def _serve_control(self, company: Any) -> None:
        """Answer ``beamish submit|pause|resume|status`` on this machine's control socket, unless
        another node of the company on this machine already does (one socket per config directory)."""
        server = ControlServer(company, control_path(company.config.store_url, company.config.base_dir))
        try:
            await server.start()
        except (RuntimeError, OSError) as exc:
            logger.info("node %s: no control socket here (%s)", self.node_id, exc)
            return
        self._control = server

    @staticmethod
    async def _when_drained(node: ClusterNode, then: Callable[[], object]) -> None:
        await node.drained.wait()
        then()

    async def stop(self) -> None:
        """Hand every unit over (the other nodes take them at once) and leave."""
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._control is not None:
            await self._control.stop()
            self._control = None
        if self.node is not None:
            await self.node.stop()
            self.node = None
