"""Many machines: N identical nodes on one PostgreSQL, agents held by leases with fencing epochs.

:class:`ClusterNode` joins a node to the cluster (a heartbeat row), holds its share of units (agents
or groups) by lease, fails over the units of dead nodes and hands its own over on drain;
:func:`list_nodes` and :func:`request_drain` are what ``beamish node list|drain`` call.
"""

from beamish._exports import claim_public_module as _claim_public_module
from beamish.cluster._membership import NodeInfo, default_node_id, list_nodes, request_drain
from beamish.cluster._node import ClusterNode, Unit

__all__ = ["ClusterNode", "NodeInfo", "Unit", "default_node_id", "list_nodes", "request_drain"]


_claim_public_module(globals(), __all__, __name__)
