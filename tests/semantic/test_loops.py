"""Loop rules, each with a scripted run of steps that must fire and a near miss that must not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from beamish.agent._loops import Detection, LoopDetector

pytestmark = pytest.mark.timeout(10)

# A scripted step: ("tool", name, args, result, error) or ("reply", text, tool_calls)
Step = tuple[Any, ...]


def play(steps: Sequence[Step], detector: LoopDetector | None = None) -> list[Detection]:
    d = detector or LoopDetector()
    found: list[Detection] = []
    for seq, step in enumerate(steps, start=1):
        if step[0] == "tool":
            _, name, args, result, error = step
            hit = d.on_tool(seq, name, args, result, error)
        else:
            _, text, calls = step
            hit = d.on_reply(seq, text, calls)
        if hit is not None:
            found.append(hit)
    return found


def tool(name: str, result: str = "ok", error: bool = False, **args: Any) -> Step:
    return ("tool", name, args, result, error)


def reply(text: str = "", calls: int = 0) -> Step:
    return ("reply", text, calls)


# -- same action, same result, 4 times --------------------------------------------------------------


def test_same_action_with_the_same_result_four_times_is_a_loop() -> None:
    found = play([tool("search", "no hits", q="x")] * 4)
    assert [f.pattern for f in found] == ["same_action_same_result"]
    assert found[0].from_step == 1
    assert found[0].steps == (1, 2, 3, 4)
    assert found[0].reason().pattern == "same_action_same_result"


def test_same_action_three_times_then_a_different_result_is_not_a_loop() -> None:
    steps = [tool("search", "no hits", q="x")] * 3 + [tool("search", "1 hit", q="x")]
    assert play(steps) == []


def test_the_same_call_with_arguments_in_another_order_is_the_same_action() -> None:
    steps = [("tool", "get", {"a": 1, "b": 2}, "r", False), ("tool", "get", {"b": 2, "a": 1}, "r", False)] * 2
    assert [f.pattern for f in play(steps)] == ["same_action_same_result"]


# -- same action failing 3 times ------------------------------------------------------------------------


def test_same_action_failing_three_times_is_a_loop() -> None:
    steps = [tool("post", f"HTTP 500 #{i}", error=True, text="hi") for i in range(3)]
    found = play(steps)
    assert [f.pattern for f in found] == ["same_action_failing"]
    assert "failed 3 times" in found[0].detail


def test_failing_twice_then_succeeding_is_not_a_loop() -> None:
    steps = [tool("post", "HTTP 500", error=True, text="hi")] * 2 + [tool("post", "posted", text="hi")]
    assert play(steps) == []


def test_three_different_actions_failing_is_not_this_loop() -> None:
    steps = [tool("post", "HTTP 500", error=True, text=t) for t in ("a", "b", "c")]
    assert play(steps) == []


# -- alternation, period <= 3, 3 cycles -------------------------------------------------------------


def test_a_b_alternation_over_three_cycles_is_a_loop() -> None:
    steps = [tool("open", "page A", p="a"), tool("open", "page B", p="b")] * 3
    found = play(steps)
    assert [f.pattern for f in found] == ["alternation"]
    assert found[0].evidence["period"] == 2
    assert found[0].from_step == 1


def test_a_period_three_cycle_over_three_cycles_is_a_loop() -> None:
    steps = [tool("a", "1"), tool("b", "2"), tool("c", "3")] * 3
    found = play(steps)
    assert [f.pattern for f in found] == ["alternation"]
    assert found[0].evidence["period"] == 3


def test_alternation_broken_in_the_last_cycle_is_not_a_loop() -> None:
    steps = [tool("open", "page A", p="a"), tool("open", "page B", p="b")] * 2
    steps += [tool("open", "page A", p="a"), tool("open", "page C", p="c")]
    assert play(steps) == []


# -- empty replies, monologue --------------------------------------------------------------------------


def test_three_empty_replies_are_a_loop() -> None:
    found = play([reply(""), reply("  "), reply("")])
    assert [f.pattern for f in found] == ["empty_replies"]


def test_two_empty_replies_and_a_tool_call_are_not_a_loop() -> None:
    assert play([reply(""), reply(""), reply("", calls=1), reply("")]) == []


def test_three_monologue_turns_are_a_loop() -> None:
    found = play([reply("Let me think."), reply("Still thinking."), reply("Thinking more.")])
    assert [f.pattern for f in found] == ["monologue"]


def test_text_turns_separated_by_a_tool_step_are_not_a_monologue() -> None:
    steps = [reply("Let me think."), reply("Let me look."), tool("read", "file"), reply("Now I know.")]
    assert play(steps) == []


# -- stagnation ------------------------------------------------------------------------------------


def _stagnant() -> list[Step]:
    # Three files read once, then revisited in an irregular order: no rule of repetition fires,
    # but nothing new is learnt.
    first = [tool("read", f"body {n}", f=n) for n in "abc"]
    order = "acbbcaabcb"
    return first + [tool("read", f"body {n}", f=n) for n in order]


def test_ten_steps_with_nothing_new_are_stagnation() -> None:
    found = play(_stagnant())
    assert [f.pattern for f in found] == ["stagnation"]
    assert found[0].evidence["new_actions"] == 0
    assert len(found[0].steps) == 10


def test_one_new_result_among_the_ten_is_not_stagnation() -> None:
    steps = _stagnant()
    steps[8] = tool("read", "body b, changed", f="b")
    assert play(steps) == []


def test_many_new_actions_are_not_stagnation() -> None:
    first = [tool("read", "same", f=n) for n in "abc"]
    steps = first + [tool("read", "same", f=str(n)) for n in range(10)]
    assert [f.pattern for f in play(steps) if f.pattern == "stagnation"] == []


# -- input, nudges and the ladder ------------------------------------------------------------------


def test_real_input_starts_afresh() -> None:
    d = LoopDetector()
    assert play([tool("search", "none", q="x")] * 3, d) == []
    d.on_input()
    assert play([tool("search", "none", q="x")], d) == []


def test_a_nudge_resets_nothing() -> None:
    d = LoopDetector()
    found = play([tool("search", "none", q="x")] * 4, d)
    assert d.climb() == "nudge"
    d.on_nudge(5)
    # one more repetition after the nudge is enough: the evidence was kept
    again = d.on_tool(6, "search", {"q": "x"}, "none")
    assert again is not None and again.pattern == "same_action_same_result"
    assert again.steps == (2, 3, 4, 6)
    assert d.climb() == "pause"
    assert found[0].pattern == "same_action_same_result"


def test_a_nudge_between_empty_replies_does_not_break_the_run_of_empties() -> None:
    d = LoopDetector()
    play([reply(""), reply("")], d)
    d.on_nudge(3)
    hit = d.on_reply(4, "", 0)
    assert hit is not None and hit.pattern == "empty_replies"


def test_the_ladder_is_nudge_then_pause_then_stop() -> None:
    d = LoopDetector()
    assert [d.climb(), d.climb(), d.climb(), d.climb()] == ["nudge", "pause", "stop", "stop"]
    d.on_input()
    assert d.climb() == "nudge"


def test_detection_event_carries_pattern_evidence_and_step() -> None:
    hit = play([tool("search", "none", q="x")] * 4)[0]
    event = hit.event("loop.detected", "run-1", "pause", at=1.0)
    assert event.data["pattern"] == "same_action_same_result"
    assert event.data["from_step"] == 1
    assert event.data["steps"] == [1, 2, 3, 4]
    assert event.data["repeated"] == ['search({"q":"x"})'] * 4
    assert event.data["action"] == "pause"
    assert "stuck" in hit.nudge_text()
