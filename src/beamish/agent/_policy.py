"""Per-reason policies: a crash, a hang, a loop and an exhausted budget are handled differently.

``restart`` kills the agent process and lets its supervisor start it again (the run resumes from
its journal); ``pause`` keeps the state and waits for ``resume`` (or, for a budget, the next window);
``stop`` ends the run as failed and the agent takes its next run; ``escalate`` exits the agent with
the reason so its supervisor's strategy decides, as OTP does with an unhandled exit.

The defaults follow the failure's level: a crash or a hang is the *process's* failure (restart); a
loop or a budget is the *run's* (pause). A restart cannot cure a loop (replay walks into it again)
nor a budget (it spends nothing less), so those two refuse ``restart`` up front.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from beamish._exceptions import SpecError
from beamish._exits import Crashed, ExitReason, Hung, Looping, OverBudget

Action = Literal["restart", "pause", "stop", "escalate"]
ACTIONS: tuple[Action, ...] = ("restart", "pause", "stop", "escalate")

_ALLOWED: dict[str, tuple[Action, ...]] = {
    "on_crash": ACTIONS,
    "on_hang": ACTIONS,
    "on_loop": ("pause", "stop", "escalate"),
    "on_budget": ("pause", "stop", "escalate"),
}
_VERSION = 1  #: of :meth:`Policy.to_json`

_WHY_NOT = {
    "on_loop": "a restart replays the journal straight back into the loop",
    "on_budget": "a restart spends no less",
}


@dataclass(frozen=True)
class Policy:
    """What an agent does about each kind of failure; validated when built, naming a bad key/value."""

    on_crash: Action = "restart"
    on_hang: Action = "restart"
    on_loop: Action = "pause"
    on_budget: Action = "pause"

    def __post_init__(self) -> None:
        for key, allowed in _ALLOWED.items():
            value = getattr(self, key)
            if value not in allowed:
                hint = f" ({_WHY_NOT[key]})" if value == "restart" and key in _WHY_NOT else ""
                raise SpecError(
                    f"Policy {key}={value!r} is not allowed{hint}; expected one of {list(allowed)}"
                )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "policy") -> Policy:
        """Build from config or from :meth:`to_json` (which adds ``"v"``), naming any unknown key
        and refusing a version this beamish does not read."""
        if "v" in data and data["v"] != _VERSION:
            raise SpecError(f"{where}: version {data['v']!r} is not one this beamish reads ({_VERSION})")
        unknown = sorted(set(data) - set(_ALLOWED) - {"v"})
        if unknown:
            raise SpecError(f"{where}: unknown key {unknown[0]!r}; expected one of {sorted(_ALLOWED)}")
        return cls(**{k: v for k, v in data.items() if k != "v"})

    def action_for(self, reason: ExitReason) -> Action | None:
        """The action for ``reason``; None for reasons no policy covers (normal exits and the like)."""
        if isinstance(reason, Crashed):
            return self.on_crash
        if isinstance(reason, Hung):
            return self.on_hang
        if isinstance(reason, Looping):
            return self.on_loop
        if isinstance(reason, OverBudget):
            return self.on_budget
        return None

    def to_json(self) -> dict[str, Any]:
        return {"v": _VERSION, **{key: getattr(self, key) for key in _ALLOWED}}


# -- the guard: budget + watchdog + loop detector behind the agent loop's hooks ----------------------
