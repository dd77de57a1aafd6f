"""The web dashboard: the supervision tree, live events, spend, and resume for paused agents.

Served by the node (``beamish dashboard``, or :class:`DashboardServer` in code) against any
:class:`DashboardSource`. Loopback by default; any other bind needs a token.
"""

from beamish._net import check_bind, is_loopback
from beamish.company._status import DashboardSource, EventHub, TreeNode, UnknownAgent
from beamish.dashboard._app import create_app
from beamish.dashboard._server import DashboardServer

__all__ = [
    "DashboardServer",
    "DashboardSource",
    "EventHub",
    "TreeNode",
    "UnknownAgent",
    "check_bind",
    "create_app",
    "is_loopback",
]
