"""Agents: the journaled LLM loop, tools, consults and the models behind them.

The public names are re-exported from :mod:`beamish`; the modules here are private.
"""

from beamish.agent._runs import Runs as _Runs
from beamish.runtime import Node as _Node

# node.submit/result/resume reach the agents through this; the runtime knows none.
_Node.register_runs(_Runs)
