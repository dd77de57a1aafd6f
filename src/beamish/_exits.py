"""Exit reasons: why an actor, an agent process or a run ended.

Frozen dataclasses so they compare by value and serialise to versioned JSON for the journal
(``to_json`` / ``exit_from_json`` round-trip every kind). ``Crashed`` keeps the live exception and
formats its traceback only when read: formatting costs more than the rest of a restart.
"""

from __future__ import annotations

import traceback as _tb
from dataclasses import dataclass, field
from typing import Any, ClassVar

_VERSION = 1


@dataclass(frozen=True)
class ExitReason:
    """Base of all exit reasons."""

    kind: ClassVar[str] = "exit"
    #: True for reasons a ``transient`` child is *not* restarted after.
    normal: ClassVar[bool] = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"v": _VERSION, "kind": self.kind}
        data.update(self._fields())
        return data

    def _fields(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Normal(ExitReason):
    """The actor finished its work and stopped by itself."""

    kind: ClassVar[str] = "normal"
    normal: ClassVar[bool] = True


@dataclass(frozen=True)
class Shutdown(ExitReason):
    """The actor was asked to stop (by its supervisor, or by escalation)."""

    kind: ClassVar[str] = "shutdown"
    normal: ClassVar[bool] = True
    detail: str | None = None

    def _fields(self) -> dict[str, Any]:
        return {"detail": self.detail}


@dataclass(frozen=True)
class ManualPause(ExitReason):
    """An operator paused the agent (``beamish pause``): its runs wait for ``resume``. Not a
    ``shutdown``, which reads as if the node had stopped them."""

    kind: ClassVar[str] = "paused"
    normal: ClassVar[bool] = True
    message: str = "paused by hand"

    def _fields(self) -> dict[str, Any]:
        return {"message": self.message}


@dataclass(frozen=True)
class Killed(ExitReason):
    """The actor was killed without a chance to clean up (brutal_kill, SIGKILL)."""

    kind: ClassVar[str] = "killed"


@dataclass(frozen=True, eq=False)
class Crashed(ExitReason):
    """An exception escaped a callback. ``traceback`` is formatted lazily."""

    kind: ClassVar[str] = "crashed"
    error: BaseException | str = ""
    _traceback: str | None = field(default=None, repr=False)

    @property
    def error_type(self) -> str:
        if isinstance(self.error, BaseException):
            return type(self.error).__name__
        return self.error.split(":", 1)[0] if self.error else ""

    @property
    def message(self) -> str:
        if isinstance(self.error, BaseException):
            return f"{type(self.error).__name__}: {self.error}"
        return self.error

    @property
    def traceback(self) -> str:
        if self._traceback is not None:
            return self._traceback
        if isinstance(self.error, BaseException):
            text = "".join(_tb.format_exception(self.error))
            object.__setattr__(self, "_traceback", text)
            return text
        return ""

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Crashed):
            return NotImplemented
        return self.message == other.message

    def __hash__(self) -> int:
        return hash(("crashed", self.message))

    def __repr__(self) -> str:
        return f"Crashed({self.message!r})"

    def _fields(self) -> dict[str, Any]:
        return {"error": self.message, "traceback": self.traceback}


@dataclass(frozen=True)
class Hung(ExitReason):
    """No heartbeat for ``silent_for_s`` seconds: killed by the watchdog."""

    kind: ClassVar[str] = "hung"
    silent_for_s: float = 0.0

    def _fields(self) -> dict[str, Any]:
        return {"silent_for_s": self.silent_for_s}


@dataclass(frozen=True)
class Looping(ExitReason):
    """The loop detector saw ``pattern`` (e.g. ``same_action_same_result``) from some step on."""

    kind: ClassVar[str] = "looping"
    pattern: str = ""
    detail: str = ""
    from_step: int | None = None

    def _fields(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "detail": self.detail, "from_step": self.from_step}


@dataclass(frozen=True)
class OverBudget(ExitReason):
    """A spending cap was reached: ``limit`` (e.g. ``per_day_usd=3.0``) and the ``spent`` amount."""

    kind: ClassVar[str] = "over_budget"
    limit: str = ""
    spent: float = 0.0
    cap: float = 0.0
    #: What the reservation that did not fit asked for (0.0 when not known, e.g. an older journal).
    needed: float = 0.0

    @property
    def message(self) -> str:
        """The reservation that did not fit, in money: what an operator needs to raise a cap."""
        if not self.needed:  # written before reservations were recorded: what was spent
            return f"{self.limit}: spent ${_money(self.spent)} of ${_money(self.cap)}"
        left = max(self.cap - self.spent, 0.0)
        return f"{self.limit}: needs ${_money(self.needed)} more, ${_money(left)} left of ${_money(self.cap)}"

    def _fields(self) -> dict[str, Any]:
        return {"limit": self.limit, "spent": self.spent, "cap": self.cap, "needed": self.needed}


@dataclass(frozen=True)
class MemoryExceeded(ExitReason):
    """A process child went over its ``max_memory_mb`` and was stopped."""

    kind: ClassVar[str] = "memory_exceeded"
    limit_mb: float = 0.0
    used_mb: float = 0.0

    def _fields(self) -> dict[str, Any]:
        return {"limit_mb": self.limit_mb, "used_mb": self.used_mb}


@dataclass(frozen=True)
class ContextFull(ExitReason):
    """A run's next model request would not fit its model's context window: ``window`` tokens,
    ``tokens`` needed (input and output cap), the agent's context ``policy`` and why (``detail``)."""

    kind: ClassVar[str] = "context_full"
    window: int = 0
    tokens: int = 0
    model: str = ""
    policy: str = ""
    detail: str = ""

    def _fields(self) -> dict[str, Any]:
        return {
            "detail": self.detail,
            "window": self.window,
            "tokens": self.tokens,
            "model": self.model,
            "policy": self.policy,
        }


_KINDS: dict[str, type[ExitReason]] = {
    cls.kind: cls
    for cls in (
        Normal,
        Shutdown,
        ManualPause,
        Killed,
        Crashed,
        Hung,
        Looping,
        OverBudget,
        MemoryExceeded,
        ContextFull,
    )
}


def _money(usd: float) -> str:
    """Cents for sums of a cent or more, two significant digits below (a model call often costs
    less than a cent, and ``$0.00`` would hide it)."""
    return f"{usd:.2f}" if usd >= 0.01 or usd == 0 else f"{usd:.2g}"


def exit_from_json(data: dict[str, Any]) -> ExitReason:
    """Rebuild an exit reason written by :meth:`ExitReason.to_json`."""
    version = data.get("v")
    if version != _VERSION:
        raise ValueError(f"unsupported exit reason version {version!r} (this beamish writes {_VERSION})")
    kind = data.get("kind")
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown exit reason kind {kind!r}; known: {sorted(_KINDS)}")
    if cls is Crashed:
        return Crashed(error=str(data.get("error", "")), _traceback=str(data.get("traceback", "")))
    fields = {k: v for k, v in data.items() if k not in ("v", "kind")}
    return cls(**fields)


def is_normal(reason: object) -> bool:
    """True for ``Normal`` and ``Shutdown``: the reasons a transient child is not restarted after."""
    return isinstance(reason, ExitReason) and reason.normal
