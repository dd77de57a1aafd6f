"""Per-reason policies: validated up front, each reason mapped to its own action."""

from __future__ import annotations

import pytest

from beamish import Crashed, Hung, Looping, Normal, OverBudget, SpecError
from beamish.agent._policy import Policy

pytestmark = pytest.mark.timeout(10)


def test_defaults_restart_process_failures_and_pause_run_failures() -> None:
    policy = Policy()
    assert policy.action_for(Crashed(ValueError("x"))) == "restart"
    assert policy.action_for(Hung(5.0)) == "restart"
    assert policy.action_for(Looping("alternation")) == "pause"
    assert policy.action_for(OverBudget("agent.per_day_usd", 3.0, 3.0)) == "pause"
    assert policy.action_for(Normal()) is None


def test_each_reason_takes_its_own_configured_action() -> None:
    policy = Policy(on_crash="escalate", on_hang="stop", on_loop="stop", on_budget="escalate")
    assert policy.action_for(Crashed("boom")) == "escalate"
    assert policy.action_for(Hung(1.0)) == "stop"
    assert policy.action_for(Looping()) == "stop"
    assert policy.action_for(OverBudget()) == "escalate"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"on_crash": "reboot"}, "on_crash='reboot'"),
        ({"on_hang": None}, "on_hang=None"),
        ({"on_loop": "restart"}, "replays the journal"),
        ({"on_budget": "restart"}, "spends no less"),
    ],
)
def test_a_bad_policy_is_refused_naming_key_and_value(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(SpecError, match=named.replace("(", r"\(")):
        Policy(**kwargs)  # type: ignore[arg-type]


def test_policy_from_config_names_an_unknown_key() -> None:
    with pytest.raises(SpecError, match="on_timeout"):
        Policy.from_mapping({"on_timeout": "stop"})
    assert Policy.from_mapping({"on_loop": "stop"}).on_loop == "stop"


def test_a_policy_round_trips_through_its_json_and_an_unknown_version_is_refused() -> None:
    policy = Policy(on_crash="stop", on_hang="pause", on_loop="stop", on_budget="escalate")
    assert Policy.from_mapping(policy.to_json()) == policy
    with pytest.raises(SpecError, match="version 2"):
        Policy.from_mapping({**policy.to_json(), "v": 2})


def test_a_policy_inside_an_agent_spec_survives_the_trip_to_its_process() -> None:
    from beamish import AgentSpec

    spec = AgentSpec(name="a", instructions="x", model="scripted:x", policy=Policy(on_budget="stop"))
    assert AgentSpec.from_json(spec.to_json()).policy == Policy(on_budget="stop")
