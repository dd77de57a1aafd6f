"""The web dashboard: the supervision tree, live events, spend, and resume for paused agents.

Served by the node (``beamish dashboard``, or :class:`DashboardServer` in code) against any
:class:`DashboardSource`. Loopback by default; any other bind needs a token.
"""

from beamish._net import check_bind, is_loopback
from beamish.dashboard._app import create_app
from beamish.dashboard._server import DashboardServer
from beamish.dashboard._source import DashboardSource, EventHub, TreeNode, UnknownAgent

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
