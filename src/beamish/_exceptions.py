"""The classes of every error beamish raises, under one root; :mod:`beamish.errors` is their public
home and draws the tree.

Control flow that must not be swallowed by ``except Exception`` derives from ``BaseException``
(see :class:`StopActor`, :class:`PauseRun`, :class:`AbortRun`).
"""

from __future__ import annotations

from typing import Any


class BeamishError(Exception):
    """Root of every error beamish raises."""


class SpecError(BeamishError, ValueError):
    """A spec is invalid; the message names the key and the bad value."""


class ConfigError(SpecError):
    """A config file is invalid; the message names the file, the key path and what was expected."""


class ActorError(BeamishError):
    """An actor could not serve a request."""


class ActorExited(ActorError):
    """The actor is not alive: its exit reason is in ``reason``."""

    def __init__(self, reason: Any, name: str | None = None) -> None:
        self.reason = reason
        self.name = name
        who = f"actor {name!r}" if name else "actor"
        super().__init__(f"{who} exited: {reason!r}")


class CallTimeout(ActorError, TimeoutError):
    """A call got no reply within its timeout."""


class NameTaken(ActorError):
    """A registered name is already used by a live actor."""


class SupervisorError(BeamishError):
    """A supervisor refused a request (OTP's ``{error, Reason}``)."""


class AlreadyPresent(SupervisorError):
    """A child spec with this id exists, but the child is not running."""


class AlreadyStarted(SupervisorError):
    """A child with this id is already running."""


class Running(SupervisorError):
    """The child is running, so it cannot be deleted or restarted."""


class Restarting(SupervisorError):
    """The child is being restarted."""


class NotFound(SupervisorError):
    """No child with this id."""


class SimpleOneForOneError(SupervisorError):
    """A call that simple_one_for_one supervisors refuse (OTP: ``{error, simple_one_for_one}``)."""


class StartFailed(SupervisorError):
    """A child failed to start; ``child_id`` names it and ``__cause__`` says why."""

    def __init__(self, child_id: Any, reason: Any) -> None:
        self.child_id = child_id
        self.reason = reason
        super().__init__(f"child {child_id!r} failed to start: {reason!r}")


class IsolationError(BeamishError):
    """A process-isolated child could not be started or broke the wire protocol."""


class StoreError(BeamishError):
    """The journal store failed."""


class StoreVersionError(StoreError):
    """The store was written by a newer beamish; it is left untouched."""


class CorruptStore(StoreError):
    """The file is not a beamish store, or it is damaged; it is left untouched."""


class StoreUnavailable(StoreError):
    """The store cannot be reached for now: the server is down or restarting, the connection was
    cut, or the disk is briefly full or locked. An infrastructure fault, not a bug: the Store retries
    and waits (see :class:`~beamish.journal.OutagePolicy`) and raises this only past its give-up."""


class Fenced(StoreError):
    """A write carried a stale lease epoch; nothing was written."""


class RunError(BeamishError):
    """A run could not be found or continued."""


class GateError(RunError):
    """A decision on an approval gate or a question was refused: no such gate, already decided,
    a decider who is not among its approvers, or a link that is forged, expired or used."""


class RunNotFound(RunError):
    """No run with this id."""


class Divergence(RunError):
    """A replayed request differs from the one recorded at that step."""


class UnknownOutcome(RunError):
    """A ``once`` tool recorded its intent but not its outcome, and nothing could settle it.

    The run is parked as ``needs_attention``: running the tool again could do the effect twice.
    """


class DeadlineMissed(RunError):
    """A run ended after its deadline (``deadline`` in epoch seconds, ``late_s`` how late): it is
    parked as ``needs_attention`` and alerted, never silently late."""

    def __init__(self, message: str, deadline: float = 0.0, late_s: float = 0.0) -> None:
        self.deadline, self.late_s = deadline, late_s
        super().__init__(message)


class ToolError(BeamishError):
    """A tool failed, or the agent is not allowed to call it. The model sees the message."""


class ConsultError(BeamishError):
    """A consult between agents failed."""


class ConsultCycle(ConsultError):
    """The consult chain would visit an agent already on it."""


class ConsultDeadline(ConsultError, TimeoutError):
    """The consulted agent did not answer before the deadline."""


class ModelError(BeamishError):
    """A model provider failed."""


class RateLimited(ModelError):
    """The provider said 429: back-pressure, not a crash."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ModelServerError(ModelError):
    """The provider answered 5xx (or a transient 408/409) or dropped the connection; ``status`` is
    the HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class ModelTimeout(ModelError, TimeoutError):
    """The provider did not answer in time, or its stream stalled before the first or next chunk."""


class ModelUnavailable(ModelError):
    """5xx or timeouts persisted past the retry bound."""


class ModelRejected(ModelError):
    """The provider refused the request with a 4xx other than 408, 409 and 429 (a malformed request,
    a prompt too long, a bad key, an unknown model): the same request gets the same answer, so it is
    not retried and the run fails with the provider's message. ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class PricingError(BeamishError):
    """A model has no known price and none is configured: fail closed."""


class ScheduleError(BeamishError, ValueError):
    """A schedule's cron expression, time zone or policy is invalid."""


class MemoryGraphError(BeamishError):
    """The knowledge-graph memory refused an operation."""


class StopActor(BaseException):
    """Control flow: unwinds an actor's callback when it is being stopped. Never caught by agent code."""

    def __init__(self, reason: Any) -> None:
        self.reason = reason
        super().__init__(reason)


class PauseRun(BaseException):
    """Control flow: a hook (budget, loop detector) parks the current run as ``paused`` with ``reason``.

    The agent keeps its state and takes its next run; ``node.resume(agent)`` continues the run.
    """

    def __init__(self, reason: Any) -> None:
        self.reason = reason
        super().__init__(reason)


class AwaitHuman(BaseException):
    """Control flow: the run stopped at a gate (an approval or a question) and waits for a person.

    The run is left ``awaiting_approval`` holding nothing but its rows; a decision queues it again.
    """

    def __init__(self, gate_id: str) -> None:
        self.gate_id = gate_id
        super().__init__(gate_id)


class AbortRun(BaseException):
    """Control flow: a hook ends the current run as ``failed`` with ``reason``; the agent lives on."""

    def __init__(self, reason: Any) -> None:
        self.reason = reason
        super().__init__(reason)
