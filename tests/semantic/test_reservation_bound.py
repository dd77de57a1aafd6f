"""The reservation is a bound: no call can cost more than the guard held for it (hypothesis).

Three properties, each over generated conversations (any Unicode, tool calls with long ids and
nested arguments, tool results, tool schemas) and prices:

- through the real guard, the scripted model's accounting (declared usage or derived) never costs
  more than the reservation made before the call;
- without a tokenizer, the byte bound covers what each provider adapter really sends, tokenized by
  the worst tokenizer there can be (one token per byte) plus the providers' framing;
- the worst-case price of a bound covers every usage within it, however the provider splits the
  prompt between input, cache reads and cache writes, across long-context tiers.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beamish.agent._bound import request_tokens_bound
from beamish.agent._budget import Budget
from beamish.agent._guard import SemanticGuard
from beamish.agent._hooks import RunInfo
from beamish.agent._keeper import BudgetKeeper
from beamish.agent._ledger import MemoryLedger, Reservation
from beamish.agent._messages import Message, ModelRequest, ToolCall, ToolSchema, Usage
from beamish.agent._policy import Policy
from beamish.agent._pricing import ModelRates, Price, PriceBook
from beamish.agent._watchdog import Watchdog
from beamish.agent.models._anthropic import AnthropicModel
from beamish.agent.models._openai import OpenAIModel
from beamish.agent.models._scripted import ScriptedModel
from beamish.testing import FakeClock

pytestmark = pytest.mark.timeout(120)

texts = st.text(max_size=120)
ids = st.text(min_size=20, max_size=64)  # providers' call ids run 24-40 characters
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
arguments = st.dictionaries(st.text(max_size=16), json_values, max_size=5)
tool_calls = st.builds(ToolCall, id=ids, name=st.text(min_size=1, max_size=40), arguments=arguments)


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Message, ...]:
    """A task, then turns: an assistant's text and calls, each call answered by a tool result."""
    messages = [Message("user", draw(texts))]
    for _ in range(draw(st.integers(0, 8))):
        calls = tuple(draw(st.lists(tool_calls, max_size=4)))
        messages.append(Message("assistant", draw(texts), tool_calls=calls))
        for c in calls:
            messages.append(Message("tool", draw(texts), tool_call_id=c.id, is_error=draw(st.booleans())))
        if not calls:
            messages.append(Message("user", draw(texts)))
    return tuple(messages)


schemas = st.builds(
    ToolSchema,
    name=st.text(min_size=1, max_size=40),
    description=texts,
    parameters=st.builds(
        lambda props: {"type": "object", "properties": props},
        st.dictionaries(
            st.text(min_size=1, max_size=16),
            st.builds(lambda d: {"type": "string", "description": d}, texts),
            max_size=4,
        ),
    ),
)
requests = st.builds(
    ModelRequest,
    system=texts,
    messages=conversations(),
    tools=st.lists(schemas, max_size=4).map(tuple),
    max_tokens=st.integers(1, 8192),
)
rates = st.floats(0, 100, allow_nan=False)
prices = st.builds(Price, rates, rates, rates, rates)


# -- the scripted model through the real guard --------------------------------------------------


@st.composite
def declared_usages(draw: st.DrawFn, max_tokens: int) -> dict[str, int] | None:
    """A turn's usage as a script declares it: any prompt size, output within ``max_tokens`` (as a
    provider stops there); or None, usage derived from the request."""
    if draw(st.booleans()):
        return None
    part = st.integers(0, 300_000)
    return {
        "input_tokens": draw(part),
        "cache_read_tokens": draw(part),
        "cache_write_tokens": draw(part),
        "output_tokens": draw(st.integers(0, max_tokens)),
    }


async def _reserve_call_settle(path: Path, request: ModelRequest, price: Price) -> tuple[int, int, list[str]]:
    model = ScriptedModel(path)
    budget = Budget(total_usd=1e6, prices={"scripted:*": price})
    clock = FakeClock()
    guard = SemanticGuard(
        agent="a",
        keeper=BudgetKeeper(MemoryLedger(), clock, {"a": budget}),
        prices=PriceBook(budget.prices),
        watchdog=Watchdog(),
        policy=Policy(),
        clock=clock,
    )
    run = RunInfo("a", "run-1", 0, model.name)
    await guard.before_run(run)
    try:
        token = await guard.before_model_call(run, request)
        response = await model.complete(request)
        await guard.after_model_call(run, request, response, token)
    finally:
        await guard.after_run(run, "succeeded")
    assert isinstance(token, Reservation)
    cost = PriceBook(budget.prices).rates(model.name).cost_nano(response.usage)
    return token.amount, cost, [e.kind for e in guard.drain_events()]


@settings(max_examples=80, deadline=None)
@given(data=st.data(), request=requests, price=prices)
def test_the_reservation_is_never_below_what_the_scripted_model_bills(
    data: st.DataObject, request: ModelRequest, price: Price
) -> None:
    usage = data.draw(declared_usages(request.max_tokens))
    reply = data.draw(texts)
    turns: list[dict[str, Any]] = [{"text": "earlier"}] * request.turn
    turns.append({"text": reply} if usage is None else {"text": reply, "usage": usage})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "script.json"
        path.write_text(json.dumps({"turns": turns}))
        reserved, cost, events = asyncio.run(_reserve_call_settle(path, request, price))
    assert cost <= reserved
    assert "budget.overshoot" not in events


# -- no tokenizer: the bytes each adapter sends ---------------------------------------------------

#: Framing per message or content block (OpenAI documents 3 per message and 1 for the role).
FRAMING = 4
#: The longest tool-use preamble Anthropic documents (Claude 3 Opus, tool_choice any/tool).
TOOL_PREAMBLE = 530
_NOT_TEXT = {"model", "max_tokens", "max_completion_tokens", "cache_control", "temperature"}
_RENDERED_AS_JSON = {"input", "input_schema", "parameters"}


def worst_tokens(value: Any, key: str = "") -> int:
    """What a provider can bill for ``value`` under the worst byte-level tokenizer: one token per
    byte of every text it reads (structured fields as the JSON they are rendered to), plus framing
    for every message and content block."""
    if key in _RENDERED_AS_JSON:
        return len(json.dumps(value, ensure_ascii=False).encode())
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool):
        return 1
    if isinstance(value, list):
        return sum(worst_tokens(v) for v in value)
    if isinstance(value, dict):
        framing = FRAMING if ("role" in value or "type" in value) else 0
        return framing + sum(worst_tokens(v, k) for k, v in value.items() if k not in _NOT_TEXT)
    return 0


def _sent(model: Any, request: ModelRequest) -> int:
    params = model._params(request)
    preamble = TOOL_PREAMBLE if request.tools else 0
    return worst_tokens(params) + preamble + FRAMING  # + the system prompt's own framing


@settings(max_examples=200, deadline=None)
@given(request=requests)
def test_the_byte_bound_covers_what_each_adapter_sends_under_the_worst_tokenizer(
    request: ModelRequest,
) -> None:
    bound = request_tokens_bound(request)
    assert _sent(AnthropicModel("claude-x", client=object()), request) <= bound
    assert _sent(OpenAIModel("gpt-x", client=object()), request) <= bound


# -- the price of a bound ---------------------------------------------------------------------------


@st.composite
def usages_within(draw: st.DrawFn, limit: int, max_tokens: int) -> Usage:
    total = draw(st.integers(0, limit))
    read = draw(st.integers(0, total))
    write = draw(st.integers(0, total - read))
    return Usage(total - read - write, draw(st.integers(0, max_tokens)), read, write)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), price=prices, limit=st.integers(0, 2_000_000), max_tokens=st.integers(0, 64_000))
def test_the_worst_case_covers_every_usage_within_the_bound(
    data: st.DataObject, price: Price, limit: int, max_tokens: int
) -> None:
    tiered = PriceBook().rates("anthropic:claude-sonnet-4-5")  # a long-context tier at 200k
    assert len(tiered.tiers) > 1
    usage = data.draw(usages_within(limit, max_tokens))
    for model_rates in (ModelRates.from_price("m", price), tiered):
        assert model_rates.cost_nano(usage) <= model_rates.worst_case_nano(limit, max_tokens)
