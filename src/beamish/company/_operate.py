"""What an operator does to one agent or one run: stop, start, restart an agent; cancel a run.

Agents are stopped and started through the supervisor that holds them (OTP's ``terminate_child`` and
``restart_child``): the child's spec stays, so ``start`` brings back the same agent, its queued runs
waiting in the store meanwhile. A run is cancelled in the store: it is claimed under a new fencing
epoch, so an incarnation still working on it has its next write refused and leaves it, and it is
marked failed with the reason, whether or not a node is running.
"""

from __future__ import annotations

from typing import Any

from beamish._events import Event
from beamish._exceptions import BeamishError
from beamish._exits import Shutdown
from beamish.journal._records import FINISHED

#: The owner a cancelled run is claimed by (seen in ``runs.lease_owner``).
CANCELLED_BY = "beamish-cancel"


async def holder(root: Any, agent: str) -> Any:
    """The live supervisor whose child ``agent`` is (the root, or its group's supervisor)."""
    for info in await root.which_children():
        if str(info.id) == agent:
            return root
        ref = info.ref
        if info.type == "supervisor" and ref is not None and hasattr(ref, "which_children"):
            found = await holder(ref, agent)
            if found is not None:
                return found
    return None


async def stop_agent(root: Any, agent: str) -> None:
    """Stop ``agent`` and keep it stopped (no restart) until :func:`start_agent`."""
    sup = await _holder_or_fail(root, agent)
    await sup.terminate_child(agent)


async def start_agent(root: Any, agent: str) -> None:
    """Start a stopped ``agent`` again; an agent already running is an error naming it."""
    sup = await _holder_or_fail(root, agent)
    running = {str(i.id): i.ref for i in await sup.which_children()}
    if running.get(agent) is not None:
        raise BeamishError(f"agent {agent!r} is already running (use restart to restart it)")
    await sup.restart_child(agent)


async def restart_agent(root: Any, agent: str) -> None:
    """Stop ``agent`` politely and start it again (its runs resume from the journal)."""
    sup = await _holder_or_fail(root, agent)
    await sup.terminate_child(agent)
    await sup.restart_child(agent)


async def _holder_or_fail(root: Any, agent: str) -> Any:
    if root is None or not root.alive:
        raise BeamishError("the company is not running")
    sup = await holder(root, agent)
    if sup is None:
        raise BeamishError(f"agent {agent!r} is not in this node's tree (held by another node?)")
    return sup


async def cancel_run(store: Any, run_id: str, *, by: str = "person") -> Any:
    """Mark ``run_id`` failed (reason ``shutdown: cancelled by …``) and fence off whoever runs it.

    A run that has already finished is refused with an error saying how it ended.
    """
    run = await store.get_run(run_id)
    if run.status in FINISHED:
        raise BeamishError(f"run {run_id!r} has already finished ({run.status}); nothing to cancel")
    epoch = await store.claim_run(run_id, CANCELLED_BY)
    reason = Shutdown(f"cancelled by {by}")
    updated = await store.update_run(run_id, status="failed", reason=reason, epoch=epoch)
    data = {"run_id": run_id, "agent": run.agent, "status": "failed", "reason": reason.to_json(), "by": by}
    await store.append_event(Event("run.cancelled", run_id, data))
    return updated
