"""Tools: schemas from hints and docstrings, validation the model can read, context, allowlists."""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

import pydantic
import pytest

import beamish
from beamish import SpecError, ToolError
from beamish.agent._tools import Tool, ToolContext, ToolSet, render_result

pytestmark = pytest.mark.timeout(10)


class Address(pydantic.BaseModel):
    city: str
    zip: str | None = None


@beamish.tool
def forecast(city: str, days: int = 3, unit: Literal["C", "F"] = "C") -> str:
    """Weather forecast for a city.

    Args:
        city: The city's name, e.g. "Oslo".
        days: How many days ahead,
            counting today.
        unit: Celsius or Fahrenheit.
    """
    return f"{city}:{days}:{unit}"


@beamish.tool(effect="once", name="post_update")
async def post(text: str, ctx: beamish.ToolContext) -> dict[str, str]:
    """Post an update.

    :param text: What to post.
    """
    return {"key": ctx.idempotency_key, "text": text}


def _ctx(tool: str = "t", seq: int = 3) -> ToolContext:
    return ToolContext(run_id="run-1", agent="marketing", tool=tool, seq=seq)


def test_schema_comes_from_type_hints_and_google_docstring() -> None:
    schema = forecast.schema()
    assert schema.name == "forecast"
    assert schema.description == "Weather forecast for a city."
    assert schema.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": 'The city\'s name, e.g. "Oslo".'},
            "days": {"type": "integer", "default": 3, "description": "How many days ahead, counting today."},
            "unit": {
                "type": "string",
                "enum": ["C", "F"],
                "default": "C",
                "description": "Celsius or Fahrenheit.",
            },
        },
        "required": ["city"],
    }
    assert forecast.effect == "read"


def test_the_context_parameter_is_hidden_from_the_model_and_rest_docstrings_work() -> None:
    schema = post.schema()
    assert schema.name == "post_update"
    assert list(schema.parameters["properties"]) == ["text"]
    assert schema.parameters["properties"]["text"]["description"] == "What to post."
    assert post.effect == "once"
    assert post.context_param == "ctx"


def test_nested_pydantic_models_appear_in_the_schema_and_are_validated() -> None:
    @beamish.tool
    def ship(to: Address, count: int) -> str:
        """Ship parcels."""
        return f"{count} to {to.city}"

    assert "$defs" in ship.parameters
    assert ship.validate({"to": {"city": "Oslo"}, "count": "2"}) == {"to": Address(city="Oslo"), "count": 2}


def test_a_decorated_tool_is_still_callable_as_the_plain_function() -> None:
    assert forecast("Rome", days=1) == "Rome:1:C"


async def test_invoke_validates_runs_and_renders_json_with_the_idempotency_key() -> None:
    result = await post.invoke({"text": "hello"}, _ctx("post_update", seq=7))
    assert result == '{"key": "run-1:7", "text": "hello"}'


async def test_bad_arguments_become_a_tool_error_naming_the_field() -> None:
    with pytest.raises(ToolError, match=r"invalid arguments for tool 'forecast': days: .*integer"):
        await forecast.invoke({"city": "Oslo", "days": "many"}, _ctx())
    with pytest.raises(ToolError, match="city: Field required"):
        await forecast.invoke({}, _ctx())


async def test_sync_tools_run_off_the_event_loop_and_may_report_progress_from_their_thread() -> None:
    beats: list[str | None] = []
    extended: list[float] = []
    loop_thread = threading.get_ident()

    @beamish.tool
    def crunch(n: int, ctx: beamish.ToolContext) -> int:
        """Crunch numbers."""
        assert threading.get_ident() != loop_thread
        ctx.extend(30.0)
        ctx.progress("half way")
        return n * 2

    ctx = ToolContext(
        run_id="r",
        agent="a",
        tool="crunch",
        seq=1,
        _on_progress=beats.append,
        _on_extend=extended.append,
        _loop=asyncio.get_running_loop(),
        _loop_thread=loop_thread,
    )
    assert await crunch.invoke({"n": 21}, ctx) == "42"
    await asyncio.sleep(0)  # let the thread-safe callbacks land on the loop
    assert beats == ["half way"]
    assert extended == [30.0]


async def test_reconcile_answers_from_the_registered_function() -> None:
    seen: list[str] = []

    @beamish.tool(effect="once")
    def charge(amount: int) -> str:
        """Charge a card."""
        return "charged"

    @charge.reconcile
    def _(key: str) -> str | None:
        seen.append(key)
        return "charged earlier" if key == "run-1:2" else None

    assert await charge.run_reconcile("run-1:2") == "charged earlier"
    assert await charge.run_reconcile("run-1:3") is None
    assert seen == ["run-1:2", "run-1:3"]


def test_bad_tool_definitions_are_refused_up_front() -> None:
    with pytest.raises(SpecError, match="effect must be one of"):
        beamish.tool(effect="sometimes")(lambda x: x)  # type: ignore[call-overload]

    def untyped(x):  # type: ignore[no-untyped-def]
        """No hints."""

    with pytest.raises(SpecError, match="parameter 'x' needs a type hint"):
        Tool(untyped, name=None, effect="read", description=None)
    with pytest.raises(SpecError, match="must match"):
        beamish.tool(name="has space")(forecast.fn)


def test_an_agent_can_only_call_the_tools_it_was_given() -> None:
    tools = ToolSet("marketing", [forecast])
    assert tools.get("forecast") is forecast
    with pytest.raises(
        ToolError, match=r"tool 'post_update' is not available to agent 'marketing' \(allowed: forecast\)"
    ):
        tools.get("post_update")
    with pytest.raises(SpecError, match="two tools are named 'forecast'"):
        ToolSet("m", [forecast, forecast])


def test_results_render_as_text() -> None:
    assert render_result("plain") == "plain"
    assert render_result({"a": 1}) == '{"a": 1}'
    assert render_result(Address(city="Oslo")) == '{"city":"Oslo","zip":null}'


async def test_a_tool_whose_lease_may_have_run_out_does_not_act_when_its_thread_starts() -> None:
    """On a cluster a tool carries the time before which it may act; a worker thread that starts it
    later (a busy executor) finds it passed, and the tool's own code never runs."""
    ran: list[str] = []

    @beamish.tool(effect="once")
    def post(text: str) -> str:
        """Post it."""
        ran.append(text)
        return "posted"

    import time

    from beamish.errors import Fenced

    late = ToolContext(run_id="r", agent="a", tool="post", seq=0, _act_before=time.monotonic() - 0.001)
    with pytest.raises(Fenced, match="did not act"):
        await post.invoke({"text": "hi"}, late)
    assert ran == []
    in_time = ToolContext(run_id="r", agent="a", tool="post", seq=0, _act_before=time.monotonic() + 60)
    assert await post.invoke({"text": "hi"}, in_time) == "posted"
    assert ran == ["hi"]
