"""AgentSpec: validated up front with the bad key named, JSON for the trip into a process."""

from __future__ import annotations

import pytest

import beamish
from beamish import AgentSpec, SpecError
from beamish.agent._mcp_tools import McpServer
from beamish.agent.models._retry import RetryPolicy
from beamish.runtime import Backoff, ChildSpec

from . import fixture_tools as ft


def _spec(**kw: object) -> AgentSpec:
    values: dict[str, object] = {"name": "cfo", "instructions": "Count money.", "model": "openai:gpt-4o-mini"}
    values.update(kw)
    return AgentSpec(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("name", "two words", "name='two words' is invalid"),
        ("model", "claude", "must look like 'provider:model'"),
        ("model", "gemini:pro", "unknown provider 'gemini'"),
        ("tools", "lookup", "tools='lookup' is invalid"),
        ("tools", ["memory?"], "tool 'memory?' is unknown"),
        ("tools", [ft.lookup, ft.lookup], "lists 'lookup' twice"),
        ("isolation", "thread", "isolation='thread' is invalid"),
        ("restart", "sometimes", "restart='sometimes' is invalid"),
        ("max_turns", 0, "max_turns=0 is invalid"),
        ("consult_deadline_s", -1, "consult_deadline_s=-1 is invalid"),
        ("retry", {"max_attempts": 2}, "expected a RetryPolicy"),
        ("consults", ["cfo"], "'consult' is not among its tools"),
    ],
)
def test_a_bad_value_is_refused_naming_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace("?", r"\?")):
        _spec(**{key: value})


def test_the_spec_round_trips_through_json_with_tools_by_import_path() -> None:
    spec = _spec(
        tools=[ft.lookup, ft.publish, "consult", McpServer(name="calc", command=["python", "s.py"])],
        retry=RetryPolicy(max_attempts=2),
        backoff=Backoff(min_s=1.0),
        model_options={"base_url": "http://127.0.0.1:8000/v1"},
    )
    data = spec.to_json()
    assert data["tools"][0] == {"tool": "agent.fixture_tools:lookup"}
    again = AgentSpec.from_json(data)
    assert again == spec
    assert again.tools[1] is ft.publish


def test_a_tool_defined_in_a_function_cannot_cross_into_a_process() -> None:
    @beamish.tool
    def local(x: int) -> int:
        """Local."""
        return x

    with pytest.raises(SpecError, match="must be a module-level"):
        _spec(tools=[local]).to_json()


def test_an_agent_spec_is_a_child_spec_start_with_its_name_as_id() -> None:
    spec = _spec(restart="transient")
    child = spec.child_spec()
    assert isinstance(child, ChildSpec)
    assert (child.id, child.start, child.restart) == ("cfo", spec, "transient")
    assert child.backoff == Backoff(), "agents restart with a backoff unless told otherwise"
    assert ChildSpec(id="x", start=spec).child_type == "worker"
    with pytest.raises(SpecError, match=r"set AgentSpec\.isolation instead"):
        spec.process_start()


def test_unknown_json_keys_and_versions_are_refused() -> None:
    data = _spec().to_json()
    with pytest.raises(SpecError, match="unknown keys"):
        AgentSpec.from_json({**data, "colour": "red"})
    with pytest.raises(SpecError, match="version"):
        AgentSpec.from_json({**data, "v": 99})
