"""The per-run watchdog: a progress heartbeat against ``hang_after_s``, stream stall timeouts, and
step and wall-clock caps, all on an injected clock.

Every step and every streamed chunk is progress. A tool that knows it will be quiet for a while says
so with ``ctx.extend(s)``. Silence past the deadline is a *hang*: a process-level failure (kill,
restart, resume from the journal). The stream stall limits (``first_chunk_s``, ``next_chunk_s``) are
enforced where the stream is read, by the model adapters' stream guard, because a stalled stream is
a provider fault to retry, not a hang of the agent; the heartbeat here is the backstop for a call
that stalls without any guard noticing. Running past the step or wall-clock cap is a *runaway*: a
run-level failure, reported as :class:`~beamish.Looping` with pattern ``max_steps`` or
``max_wall_s``, which the agent survives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import SpecError
from beamish._exits import ExitReason, Hung, Looping
from beamish.agent.models._settings import FIRST_CHUNK_S, NEXT_CHUNK_S

_SECONDS = ("hang_after_s", "max_wall_s", "first_chunk_s", "next_chunk_s")
#: The defaults every agent is protected by, stated once (``beamish.toml``'s ``[watchdog]`` too).
HANG_AFTER_S = 120.0
MAX_STEPS = 50


def _check_seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"Watchdog {name} must be a number of seconds or None, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise SpecError(f"Watchdog {name} must be > 0 seconds (None for no limit), got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Watchdog:
    """Limits on one run. ``None`` switches a limit off.

    ``hang_after_s``: longest silence (no step, no chunk, no extension) before the run counts as hung.
    ``first_chunk_s`` / ``next_chunk_s``: longest wait for a stream's first chunk and between chunks.
    ``max_steps``: most steps (model calls plus tool calls) a run may take. ``max_wall_s``: longest
    a run may take in all. Every agent gets ``Watchdog()`` (and the loop detector with it) unless
    its spec says ``watchdog=None``; a ``beamish.toml`` agent's ``[watchdog]`` defaults are these.
    """

    hang_after_s: float | None = HANG_AFTER_S
    max_steps: int | None = MAX_STEPS
    max_wall_s: float | None = None
    first_chunk_s: float | None = FIRST_CHUNK_S
    next_chunk_s: float | None = NEXT_CHUNK_S

    def __post_init__(self) -> None:
        for name in _SECONDS:
            object.__setattr__(self, name, _check_seconds(name, getattr(self, name)))
        steps = self.max_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            raise SpecError(f"Watchdog max_steps must be a whole number >= 1 or None, got {steps!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "watchdog") -> Watchdog:
        """Build from config or from :meth:`to_json`, naming any unknown key and refusing a
        version this beamish does not read."""
        if "v" in data and data["v"] != 1:
            raise SpecError(f"{where}: version {data['v']!r} is not one this beamish reads (1)")
        known = {*_SECONDS, "max_steps"}
        unknown = sorted(set(data) - known - {"v"})
        if unknown:
            raise SpecError(f"{where}: unknown key {unknown[0]!r}; expected one of {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k != "v"})

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, "max_steps": self.max_steps, **{name: getattr(self, name) for name in _SECONDS}}


@dataclass(frozen=True)
class Verdict:
    """What the watchdog decided: ``kind`` (``hung``, ``max_steps``, ``max_wall_s``),
    the exit ``reason``, the ``evidence`` and the ``step`` it was decided at."""

    kind: str
    reason: ExitReason
    evidence: dict[str, Any]
    step: int

    @property
    def process_level(self) -> bool:
        """A hang needs the process killed and restarted; a cap ends only the run."""
        return self.kind == "hung"

    def event(self, subject: str, at: float) -> Event:
        kind = "watchdog.hung" if self.process_level else "watchdog.cap_reached"
        data = {"kind": self.kind, "reason": self.reason.to_json(), "step": self.step, **self.evidence}
        return Event(kind, subject, data, at=at)


@dataclass
class RunWatch:
    """The watchdog of one run, on ``clock``'s monotonic time.

    The agent loop calls :meth:`step` per step, :meth:`chunk` per streamed chunk, :meth:`extend`
    for known-long tools; :meth:`check` (cheap: a few comparisons) says whether a limit is broken,
    and :meth:`next_deadline` when to look again.
    """

    spec: Watchdog
    clock: Clock
    steps: int = 0
    _started: float = 0.0
    _progress: float = 0.0
    _extended_until: float = 0.0
    chunks: int = 0
    _last_what: str = "start"
    _stopped: bool = field(default=False)

    def __post_init__(self) -> None:
        now = self.clock.monotonic()
        self._started = self._progress = now

    def beat(self, what: str = "progress") -> None:
        """Progress was made: the silence clock restarts."""
        self._progress = self.clock.monotonic()
        self._last_what = what

    def step(self, what: str = "step") -> Verdict | None:
        """A step began; returns the cap verdict if this step is one too many."""
        self.steps += 1
        self._extended_until = 0.0  # an extension covers the tool that asked for it, no further
        self.beat(what)
        cap = self.spec.max_steps
        if cap is not None and self.steps > cap:
            return Verdict(
                "max_steps",
                Looping(pattern="max_steps", detail=f"run took more than {cap} steps", from_step=self.steps),
                {"max_steps": cap, "steps": self.steps},
                self.steps,
            )
        return None

    def extend(self, seconds: float) -> None:
        """A tool announces ``seconds`` of legitimate silence (the deadline never moves earlier)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            raise SpecError(f"extend(seconds) needs a finite number of seconds, got {seconds!r}")
        now = self.clock.monotonic()
        self._extended_until = max(self._extended_until, now + max(0.0, float(seconds)))
        self.beat("extend")

    def chunk(self) -> None:
        """A streamed chunk arrived: progress."""
        self.chunks += 1
        self._progress = self.clock.monotonic()
        self._last_what = "chunk"

    def stop(self) -> None:
        """The run is over: nothing more to watch."""
        self._stopped = True

    def hang_deadline(self) -> float | None:
        if self.spec.hang_after_s is None:
            return None
        return max(self._progress + self.spec.hang_after_s, self._extended_until)

    def next_deadline(self) -> float | None:
        """The earliest monotonic time at which :meth:`check` could say something new."""
        if self._stopped:
            return None
        candidates = [self.hang_deadline()]
        if self.spec.max_wall_s is not None:
            candidates.append(self._started + self.spec.max_wall_s)
        times = [t for t in candidates if t is not None]
        return min(times) if times else None

    def check(self) -> Verdict | None:
        """The broken limit, if any, at the clock's current time."""
        if self._stopped:
            return None
        now = self.clock.monotonic()
        silent = now - self._progress
        wall = self.spec.max_wall_s
        if wall is not None and now - self._started >= wall:
            return Verdict(
                "max_wall_s",
                Looping(pattern="max_wall_s", detail=f"run ran longer than {wall}s", from_step=self.steps),
                {"max_wall_s": wall, "ran_for_s": now - self._started},
                self.steps,
            )
        deadline = self.hang_deadline()
        if deadline is not None and now >= deadline:
            return Verdict(
                "hung",
                Hung(silent_for_s=silent),
                {
                    "silent_for_s": silent,
                    "hang_after_s": self.spec.hang_after_s,
                    "last_progress": self._last_what,
                },
                self.steps,
            )
        return None

    async def watch(self, on_verdict: Callable[[Verdict], None]) -> Verdict | None:
        """Sleep on the clock until a limit breaks, then report it once and return it.

        Run it as a task beside the run; cancel it (or :meth:`stop`) when the run ends. Progress only
        ever moves the deadlines later, so it wakes at most once per deadline and costs nothing
        between them.
        """
        while True:
            deadline = self.next_deadline()
            if deadline is None:
                return None
            await self.clock.sleep(max(0.0, deadline - self.clock.monotonic()))
            verdict = self.check()
            if verdict is not None:
                on_verdict(verdict)
                return verdict
