"""Every exit reason round-trips through the journal's JSON."""

import json

import pytest

from beamish import ContextFull, Crashed, Hung, Killed, Looping, MemoryExceeded, Normal, OverBudget, Shutdown
from beamish.runtime import exit_from_json


@pytest.mark.parametrize(
    "reason",
    [
        Normal(),
        Shutdown(),
        Shutdown("escalated"),
        Killed(),
        Hung(silent_for_s=12.5),
        Looping(pattern="same_action_same_result", detail="search(x) x4", from_step=7),
        OverBudget(limit="per_day_usd", spent=3.01, cap=3.0),
        MemoryExceeded(limit_mb=64, used_mb=80.5),
        ContextFull(window=200_000, tokens=200_512, model="anthropic:x", policy="fail", detail="full"),
    ],
)
def test_exit_reason_round_trips_through_json(reason: object) -> None:
    data = json.loads(json.dumps(reason.to_json()))  # type: ignore[attr-defined]
    assert exit_from_json(data) == reason


def test_crashed_keeps_message_and_traceback_through_json() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        reason = Crashed(exc)
    back = exit_from_json(json.loads(json.dumps(reason.to_json())))
    assert isinstance(back, Crashed)
    assert back == reason
    assert back.message == "RuntimeError: boom"
    assert "raise RuntimeError" in back.traceback


def test_unknown_exit_kind_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="'nonsense'"):
        exit_from_json({"v": 1, "kind": "nonsense"})
