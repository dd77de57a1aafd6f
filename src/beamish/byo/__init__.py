"""Bring your own agent: supervision and a journal for agents written with other frameworks.

``beamish.durable(client)`` journals every model request an SDK client makes (at its HTTP
transport, so any framework on top is covered); ``beamish.step`` journals the user's own tool
functions with intent/done and idempotency keys; ``AgentSpec(entry="package.module:function")``
runs such an agent under supervision like a native one. Adapters for particular frameworks are in
``beamish.byo.adapters``. The public names are re-exported from :mod:`beamish`.
"""

from beamish.byo import _entry as _entry  # registers the entry loop with the agent layer
from beamish.byo._context import RunContext, current_run
from beamish.byo._durable import durable
from beamish.byo._step import step

__all__ = ["RunContext", "current_run", "durable", "step"]
