"""Durable clients and steps, driven directly in a run context (no agent actor around them).

The real ``openai`` SDK talks to the local wire-format server; the journal is a real SQLite store.
A "restart" is a second context over the same run with a new fencing epoch, as a restarted agent
would open it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

import beamish
from agent._wire import WireServer, openai_error
from beamish import SpecError
from beamish.journal import Store, open_store

from ._incontext import in_run
from ._replies import reply

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await open_store(f"sqlite:///{tmp_path}/j.db") as s:
        yield s


def _client(url: str, **kw: Any) -> openai.AsyncOpenAI:
    return beamish.durable(openai.AsyncOpenAI(base_url=url, api_key="test", max_retries=0, **kw))


async def _ask(client: openai.AsyncOpenAI, text: str) -> str:
    done = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )
    return str(done.choices[0].message.content)


async def test_a_durable_client_outside_a_run_passes_requests_straight_through() -> None:
    async with WireServer() as server:
        server.queue(reply("openai-json", "hello"))
        assert await _ask(_client(server.url), "hi") == "hello"
        assert len(server.requests) == 1


async def test_a_restarted_run_gets_its_answers_from_the_journal_without_a_request(store: Store) -> None:
    run_id = uuid.uuid4().hex
    async with WireServer() as server:
        server.queue(reply("openai-json", "one"), reply("openai-stream", "two"))
        client = _client(server.url)
        async with in_run(store, run_id):
            first = await _ask(client, "1")
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "2"}], stream=True
            )
            second = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        async with in_run(store, run_id) as again:
            assert await _ask(client, "1") == first == "one"
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "2"}], stream=True
            )
            assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == second
            assert again.journal.replayed_calls == 2
        assert len(server.requests) == 2
    steps = await store.steps(run_id)
    assert [(s.seq, s.kind, s.name) for s in steps] == [(0, "llm", "openai:gpt-4o-mini")] * 1 + [
        (1, "llm", "openai:gpt-4o-mini")
    ]


async def test_an_error_answer_reaches_the_sdk_unjournaled_and_its_retry_keeps_the_step_number(
    store: Store,
) -> None:
    run_id = uuid.uuid4().hex
    async with WireServer() as server:
        server.queue(openai_error(429, {"retry-after": "0"}), reply("openai-json", "after the 429"))
        client = _client(server.url).with_options(max_retries=1)
        async with in_run(store, run_id):
            assert await _ask(client, "hi") == "after the 429"
        assert len(server.requests) == 2, "the SDK's own retry went out"
    steps = await store.steps(run_id)
    assert [(s.seq, s.phase) for s in steps] == [(0, "done")]


async def test_a_sync_client_journals_from_a_worker_thread_and_refuses_the_event_loop(store: Store) -> None:
    run_id = uuid.uuid4().hex
    async with WireServer() as server:
        server.queue(reply("openai-json", "from a thread"))
        client = beamish.durable(openai.OpenAI(base_url=server.url, api_key="test", max_retries=0))

        def ask() -> str:
            done = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )
            return str(done.choices[0].message.content)

        async with in_run(store, run_id):
            assert await asyncio.to_thread(ask) == "from a thread"
            with pytest.raises(SpecError, match="event loop"):
                ask()  # on the loop's own thread: it would block every other run of the node
        assert len(server.requests) == 1
    assert [s.phase for s in await store.steps(run_id)] == ["done"]


async def test_a_once_block_runs_once_and_its_outcome_is_replayed(store: Store) -> None:
    run_id = uuid.uuid4().hex
    charges: list[str] = []

    async def charge() -> dict[str, Any]:
        async with beamish.step("charge", effect="once", args={"amount": 5}) as s:
            if not s.replayed:
                assert s.key == f"{run_id}:0"
                charges.append(s.key)
                s.value = {"charged": 5}
        return dict(s.value)

    async with in_run(store, run_id):
        assert await charge() == {"charged": 5}
    async with in_run(store, run_id):
        assert await charge() == {"charged": 5}
    assert charges == [f"{run_id}:0"]


async def test_a_step_function_is_replayed_and_a_non_json_result_is_refused(store: Store) -> None:
    calls: list[str] = []

    @beamish.step(effect="idempotent")
    async def save(note: str) -> str:
        calls.append(str(beamish.current_run().idempotency_key))
        return f"saved {note}"

    @beamish.step
    async def opaque() -> object:
        return object()

    run_id = uuid.uuid4().hex
    async with in_run(store, run_id):
        assert await save("a") == "saved a"
        with pytest.raises(SpecError, match="not JSON"):
            await opaque()
    async with in_run(store, run_id):
        assert await save("a") == "saved a"
    assert calls == [f"{run_id}:0"]

    @beamish.step(effect="once")
    async def echo(text: str) -> str:
        return text

    assert await echo("outside") == "outside"  # no run: a plain call


async def test_a_sync_step_runs_in_a_thread_and_is_refused_on_the_event_loop(store: Store) -> None:
    @beamish.step(effect="idempotent")
    def blocking(n: int) -> int:
        return n * 2

    async with in_run(store, uuid.uuid4().hex):
        assert await asyncio.to_thread(blocking, 21) == 42
        with pytest.raises(SpecError, match="event loop"):
            blocking(1)


def test_a_step_with_an_unknown_effect_is_refused_by_name() -> None:
    with pytest.raises(SpecError, match="effect='twice'"):
        beamish.step("post", effect="twice")


def test_an_entry_spec_is_validated_up_front() -> None:
    with pytest.raises(SpecError, match="entry='nocolon'"):
        beamish.AgentSpec("a", "", "openai:gpt-4o-mini", entry="nocolon")
    with pytest.raises(SpecError, match="leave tools empty"):
        beamish.AgentSpec("a", "", "openai:gpt-4o-mini", tools=["consult"], entry="m:f")
    spec = beamish.AgentSpec("a", "", "openai:gpt-4o-mini", entry="byo.fixture_agents:pydantic_ai")
    assert beamish.AgentSpec.from_json(spec.to_json()) == spec
    assert "byo.fixture_agents" in spec.process_modules()


def test_an_entry_that_is_not_an_async_function_is_refused() -> None:
    from beamish.byo._entry import load_entry

    with pytest.raises(SpecError, match="must be an async function"):
        load_entry("byo.fixture_agents:publish_reconcile", "a")
    with pytest.raises(SpecError, match="cannot be imported"):
        load_entry("byo.fixture_agents:missing", "a")


def test_current_run_outside_a_run_says_where_it_works() -> None:
    with pytest.raises(SpecError, match="entry function"):
        beamish.current_run()


async def test_a_plain_httpx_client_is_made_durable_for_frameworks_that_take_one(store: Store) -> None:
    import httpx

    run_id = uuid.uuid4().hex
    async with WireServer() as server:
        server.queue(reply("openai-json", "over httpx"))
        client = beamish.durable(httpx.AsyncClient(base_url=server.url))
        assert isinstance(client, httpx.AsyncClient)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):  # the second time answered from the journal
            async with in_run(store, run_id):
                answer = (await client.post("/v1/chat/completions", json=body)).json()
                assert answer["choices"][0]["message"]["content"] == "over httpx"
        assert len(server.requests) == 1
        await client.aclose()
    with pytest.raises(SpecError, match="durable\\(\\) takes"):
        beamish.durable(object())


async def test_parallel_tool_calls_of_a_framework_keep_their_step_numbers_on_replay(store: Store) -> None:
    from agent._wire import Reply, openai_completion

    from . import fixture_agents as fa

    run_id = f"parallel-{uuid.uuid4().hex}"
    both = [("c1", "lookup", '{"topic": "a"}'), ("c2", "publish", '{"text": "b"}')]
    usage = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    async with WireServer() as server:
        server.queue(Reply(body=openai_completion("", both, usage)), reply("openai-json", "both done"))
        for _ in range(2):  # the second run replays: same steps, same numbers, nothing redone
            async with in_run(store, run_id) as ctx:
                result = await fa.pydantic_agent(server.url).run("go")
                assert result.output == "both done"
                assert not ctx.journal.divergences
        assert len(server.requests) == 2
    assert fa.effects(run_id) == ["lookup a", f"publish {run_id}:2 b"], "numbered in call order, once"
    steps = await store.steps(run_id)
    assert [(s.seq, s.kind) for s in steps] == [(0, "llm"), (1, "tool"), (2, "tool"), (3, "llm")]
