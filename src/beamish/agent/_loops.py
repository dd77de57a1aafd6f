"""Loop detection: telling an agent that is stuck from one that is working, over its recent steps.

The detector watches the steps since the last *real* input (the task, or a human's message; never a
nudge beamish injected itself) and knows six patterns:

==========================  =================================================================
``same_action_same_result`` the same tool call with the same result 4 times in a row
``same_action_failing``     the same tool call failing 3 times in a row
``alternation``             a cycle of period 2 or 3 (A B A B A B …) repeated 3 times
``empty_replies``           3 replies in a row with neither text nor tool calls
``monologue``               3 replies in a row of text with no tool call, nothing in between
``stagnation``              10 tool steps with at most 2 new actions and not one new result
==========================  =================================================================

Escalation is a ladder, one rung per detection: nudge the model once (the nudge is a message the
loop journals), then pause the run with :class:`~beamish.Looping`, then — if the resumed run loops
again — stop it. A nudge changes nothing in the detector's memory: the same evidence plus one more
repeated step climbs the ladder.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from beamish._events import Event
from beamish._exits import Looping

SAME_RESULT_RUN = 4
FAILING_RUN = 3
CYCLES = 3
MAX_PERIOD = 3
REPLY_RUN = 3
STAGNATION_STEPS = 10
STAGNATION_NEW_ACTIONS = 2
WINDOW = 20

Rung = Literal["nudge", "pause", "stop"]


@dataclass(frozen=True, slots=True)
class _Obs:
    kind: Literal["tool", "reply"]
    step: int
    action: str = ""
    result: str = ""
    error: bool = False
    empty: bool = False
    monologue: bool = False
    new_action: bool = False
    new_result: bool = False


@dataclass(frozen=True)
class Detection:
    """A loop seen: its ``pattern``, a human ``detail``, the first step of the evidence, the steps
    that make it up, and the evidence itself (JSON-safe)."""

    pattern: str
    detail: str
    from_step: int
    steps: tuple[int, ...]
    evidence: dict[str, Any]

    def reason(self) -> Looping:
        return Looping(pattern=self.pattern, detail=self.detail, from_step=self.from_step)

    def event(self, kind: str, subject: str, rung: Rung, at: float) -> Event:
        data = {
            "pattern": self.pattern,
            "detail": self.detail,
            "from_step": self.from_step,
            "steps": list(self.steps),
            "action": rung,
            **self.evidence,
        }
        return Event(kind, subject, data, at=at)

    def nudge_text(self) -> str:
        """What the model is told once, before the run is paused."""
        return (
            f"[beamish] You appear to be stuck ({self.detail}). Do not repeat it: try a different "
            "approach, or give your final answer with what you have."
        )


def action_key(name: str, arguments: Any) -> str:
    """A canonical key for one tool call: the name and its arguments, key order ignored."""
    try:
        args = json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        args = repr(arguments)
    return f"{name}({args})"


@dataclass
class LoopDetector:
    """Watches one run's steps; :meth:`on_tool` and :meth:`on_reply` return a :class:`Detection`
    when the latest step completes a pattern. :meth:`climb` says what to do about it."""

    window: int = WINDOW
    _obs: deque[_Obs] = field(default_factory=deque)
    _tools: deque[_Obs] = field(default_factory=deque)
    _seen_actions: set[str] = field(default_factory=set)
    _seen_results: set[str] = field(default_factory=set)
    nudges: list[int] = field(default_factory=list)
    rung: int = 0  # 0: nothing done yet; 1: nudged; 2: paused; 3: stopped

    def __post_init__(self) -> None:
        self._obs = deque(maxlen=self.window)
        self._tools = deque(maxlen=self.window)

    # -- what happened ----------------------------------------------------------------------------

    def on_input(self) -> None:
        """A real input arrived (the task, a human's message): a fresh start, ladder included."""
        self._obs.clear()
        self._tools.clear()
        self._seen_actions.clear()
        self._seen_results.clear()
        self.nudges.clear()
        self.rung = 0

    def on_nudge(self, step: int) -> None:
        """beamish nudged the model: recorded, and nothing else changes (not new input)."""
        self.nudges.append(step)

    def on_tool(
        self, step: int, name: str, arguments: Any, result: str, error: bool = False
    ) -> Detection | None:
        """A tool call finished with ``result`` (its text; ``error`` if it failed)."""
        action = action_key(name, arguments)
        result_key = f"{'!' if error else '='}{hash(result)}"
        obs = _Obs(
            "tool",
            step,
            action,
            result_key,
            error,
            new_action=action not in self._seen_actions,
            new_result=result_key not in self._seen_results,
        )
        self._seen_actions.add(action)
        self._seen_results.add(result_key)
        self._obs.append(obs)
        self._tools.append(obs)
        return self._failing() or self._same_result() or self._alternation() or self._stagnation()

    def on_reply(self, step: int, text: str, tool_calls: int) -> Detection | None:
        """The model answered with ``text`` and ``tool_calls`` calls."""
        has_text = bool(text.strip())
        obs = _Obs(
            "reply", step, empty=not has_text and tool_calls == 0, monologue=has_text and tool_calls == 0
        )
        self._obs.append(obs)
        return self._replies()

    # -- the ladder -------------------------------------------------------------------------------

    def climb(self) -> Rung:
        """One rung up for a detection: ``nudge`` the first time, then ``pause``, then ``stop``."""
        self.rung = min(self.rung + 1, 3)
        return ("nudge", "pause", "stop")[self.rung - 1]

    # -- the rules --------------------------------------------------------------------------------

    # Each rule first looks at the newest step only and leaves at once when it cannot match, so a
    # working run pays a few comparisons per step.

    def _failing(self) -> Detection | None:
        t = self._tools
        if len(t) < FAILING_RUN or not t[-1].error:
            return None
        last = t[-1]
        for k in range(2, FAILING_RUN + 1):
            if not (t[-k].error and t[-k].action == last.action):
                return None
        tail = list(t)[-FAILING_RUN:]
        return _detect(
            "same_action_failing", f"{_short(last.action)} failed {FAILING_RUN} times in a row", tail
        )

    def _same_result(self) -> Detection | None:
        t = self._tools
        if len(t) < SAME_RESULT_RUN:
            return None
        last = t[-1]
        for k in range(2, SAME_RESULT_RUN + 1):
            if t[-k].action != last.action or t[-k].result != last.result:
                return None
        tail = list(t)[-SAME_RESULT_RUN:]
        detail = f"{_short(last.action)} returned the same result {SAME_RESULT_RUN} times in a row"
        return _detect("same_action_same_result", detail, tail)

    def _alternation(self) -> Detection | None:
        t = self._tools
        n = len(t)
        for period in range(2, MAX_PERIOD + 1):
            span = period * CYCLES
            if n < span:
                continue
            if not all(
                t[-i].action == t[-i - period].action and t[-i].result == t[-i - period].result
                for i in range(1, span - period + 1)
            ):
                continue
            tail = list(t)[-span:]
            pairs = [(o.action, o.result) for o in tail]
            if len(set(pairs[:period])) < 2:
                continue
            names = " → ".join(_short(a, 40) for a, _ in pairs[:period])
            detail = f"the cycle {names} repeated {CYCLES} times"
            return _detect("alternation", detail, tail, period=period)
        return None

    def _stagnation(self) -> Detection | None:
        t = self._tools
        if len(t) < STAGNATION_STEPS:
            return None
        new_actions = 0
        for k in range(1, STAGNATION_STEPS + 1):
            o = t[-k]
            if o.new_result:
                return None
            new_actions += o.new_action
        if new_actions > STAGNATION_NEW_ACTIONS:
            return None
        tail = list(t)[-STAGNATION_STEPS:]
        detail = f"{STAGNATION_STEPS} tool steps brought {new_actions} new actions and no new result"
        return _detect("stagnation", detail, tail, new_actions=new_actions)

    def _replies(self) -> Detection | None:
        o = self._obs
        if len(o) < REPLY_RUN or any(o[-k].kind != "reply" for k in range(1, REPLY_RUN + 1)):
            return None
        tail = list(o)[-REPLY_RUN:]
        if all(x.empty for x in tail):
            return _detect("empty_replies", f"{REPLY_RUN} empty replies in a row", tail)
        if all(x.monologue for x in tail):
            detail = f"{REPLY_RUN} replies in a row without a tool call or new input"
            return _detect("monologue", detail, tail)
        return None


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detect(pattern: str, detail: str, tail: list[_Obs], **extra: Any) -> Detection:
    steps = tuple(o.step for o in tail)
    evidence: dict[str, Any] = {"repeated": [_short(o.action) for o in tail if o.action], **extra}
    return Detection(pattern, detail, steps[0], steps, evidence)
