"""Every error beamish raises, under one root, and the control-flow signals a hook may raise.

``except beamish.errors.BeamishError`` catches all of them; the common ones are also at the top level
(``beamish.SpecError``, ``beamish.StoreError`` …).

The tree::

    BeamishError
    ├── SpecError (ValueError)            a ChildSpec / SupervisorSpec / AgentSpec / config value is invalid
    │   └── ConfigError                   a config file is invalid (names file, key path, expectation)
    ├── ActorError
    │   ├── ActorExited                   the actor is dead (or died while a call was pending)
    │   ├── CallTimeout (TimeoutError)    no reply within the call's timeout
    │   └── NameTaken                     a registered name is already in use
    ├── SupervisorError                   OTP's supervisor error tuples, as exceptions
    │   ├── AlreadyPresent                a spec with this id exists (child not running)
    │   ├── AlreadyStarted                a child with this id is running
    │   ├── Running                       the child is running (delete/restart refused)
    │   ├── Restarting                    the child is being restarted
    │   ├── NotFound                      no child with this id
    │   ├── SimpleOneForOneError          a call simple_one_for_one supervisors refuse
    │   └── StartFailed                   a child's start failed (carries the child id and cause)
    ├── IsolationError                    a process child could not be started or spoke garbage
    ├── StoreError                        the journal store failed (driver errors translated here)
    │   ├── StoreVersionError             the store was written by a newer beamish
    │   ├── CorruptStore                  the file is not a beamish store or is damaged
    │   ├── StoreUnavailable              the store cannot be reached for now (server down, disk full)
    │   └── Fenced                        a write carried a stale lease epoch; nothing was written
    ├── RunError
    │   ├── RunNotFound                   no such run
    │   ├── Divergence                    a replayed request differs from the journal (informational)
    │   ├── UnknownOutcome                a once tool's effect may or may not have happened: needs attention
    │   ├── DeadlineMissed                a run ended after its deadline: needs attention, alerted
    │   └── GateError                     a decision on a gate is refused (unknown, decided, not yours)
    ├── ToolError                         a tool failed or is not allowed (the model sees the text)
    ├── ConsultError
    │   ├── ConsultCycle                  the consult chain would revisit an agent (A→B→A)
    │   └── ConsultDeadline (TimeoutError) no answer before the deadline
    ├── ModelError                        a model provider failed
    │   ├── RateLimited                   HTTP 429: back-pressure, carries retry_after_s
    │   ├── ModelServerError              a 5xx, a 408/409 or a dropped connection (retried with backoff)
    │   ├── ModelTimeout (TimeoutError)   no answer, or a stream stalled past its chunk timeout (retried)
    │   ├── ModelUnavailable              5xx / timeouts after bounded retries
    │   └── ModelRejected                 any other 4xx: the request itself was refused (never retried)
    ├── PricingError                      a model has no known price and none is configured
    ├── ScheduleError                     a cron expression, zone or policy is invalid
    └── MemoryGraphError                  the knowledge-graph memory refused an operation

Control flow is not an error: :class:`StopActor`, :class:`PauseRun`, :class:`AbortRun` and
:class:`AwaitHuman` (a run stopped at an approval gate) derive from
``BaseException`` so that an agent's ``except Exception`` cannot swallow them. A hook raises
``PauseRun(reason)`` to park the current run, ``AbortRun(reason)`` to fail it; the agent lives on.
"""

from beamish._exceptions import (
    AbortRun,
    ActorError,
    ActorExited,
    AlreadyPresent,
    AlreadyStarted,
    AwaitHuman,
    BeamishError,
    CallTimeout,
    ConfigError,
    ConsultCycle,
    ConsultDeadline,
    ConsultError,
    CorruptStore,
    DeadlineMissed,
    Divergence,
    Fenced,
    GateError,
    IsolationError,
    MemoryGraphError,
    ModelError,
    ModelRejected,
    ModelServerError,
    ModelTimeout,
    ModelUnavailable,
    NameTaken,
    NotFound,
    PauseRun,
    PricingError,
    RateLimited,
    Restarting,
    RunError,
    Running,
    RunNotFound,
    ScheduleError,
    SimpleOneForOneError,
    SpecError,
    StartFailed,
    StopActor,
    StoreError,
    StoreUnavailable,
    StoreVersionError,
    SupervisorError,
    ToolError,
    UnknownOutcome,
)
from beamish._exports import claim_public_module as _claim_public_module

__all__ = [
    "AbortRun",
    "ActorError",
    "ActorExited",
    "AlreadyPresent",
    "AlreadyStarted",
    "AwaitHuman",
    "BeamishError",
    "CallTimeout",
    "ConfigError",
    "ConsultCycle",
    "ConsultDeadline",
    "ConsultError",
    "CorruptStore",
    "DeadlineMissed",
    "Divergence",
    "Fenced",
    "GateError",
    "IsolationError",
    "MemoryGraphError",
    "ModelError",
    "ModelRejected",
    "ModelServerError",
    "ModelTimeout",
    "ModelUnavailable",
    "NameTaken",
    "NotFound",
    "PauseRun",
    "PricingError",
    "RateLimited",
    "Restarting",
    "RunError",
    "RunNotFound",
    "Running",
    "ScheduleError",
    "SimpleOneForOneError",
    "SpecError",
    "StartFailed",
    "StopActor",
    "StoreError",
    "StoreUnavailable",
    "StoreVersionError",
    "SupervisorError",
    "ToolError",
    "UnknownOutcome",
]

_claim_public_module(globals(), __all__, __name__)
