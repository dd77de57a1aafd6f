"""The scripted model: deterministic by request, faults on demand, every format, named as scripted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from beamish import ModelError, SpecError, Watchdog
from beamish.agent._messages import Message, ModelRequest, ModelResponse, ToolCall
from beamish.agent.models._anthropic import AnthropicModel
from beamish.agent.models._openai import OpenAIModel
from beamish.agent.models._registry import make_model, parse_model_string
from beamish.agent.models._retry import RetryPolicy, complete_with_retries
from beamish.agent.models._scripted import ScriptedModel
from beamish.agent.models._settings import ModelSettings
from beamish.errors import ModelRejected, ModelServerError, ModelTimeout, ModelUnavailable, RateLimited

from ._clocks import RecordingClock

pytestmark = pytest.mark.timeout(10)


def _req(task: str, *turns: ModelResponse) -> ModelRequest:
    messages: list[Message] = [Message(role="user", text=task)]
    for t in turns:
        messages.append(t.as_message())
        messages.extend(Message(role="tool", text="ok", tool_call_id=c.id) for c in t.tool_calls)
    return ModelRequest(system="", messages=tuple(messages))


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


async def test_turns_are_chosen_by_the_conversation_not_by_a_call_counter(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.json",
        [
            {"tool_calls": [{"name": "lookup", "arguments": {"q": "x"}}]},
            {"text": "Answer to {task}"},
        ],
    )
    model = make_model(f"scripted:{path}")
    first = await model.complete(_req("the question"))
    assert first.tool_calls == (ToolCall("call_0_0", "lookup", {"q": "x"}),)
    assert first.stop_reason == "tool_use"
    second = await model.complete(_req("the question", first))
    assert second.text == "Answer to the question"
    # a fresh model (a restarted process) asked the second request answers the same
    fresh = ScriptedModel(path)
    assert (await fresh.complete(_req("the question", first))) == second
    assert second.model == f"scripted:{path}"
    assert model.name.startswith("scripted:")


async def test_scripts_are_picked_by_the_task_text(tmp_path: Path) -> None:
    toml = """
[[scripts]]
when = "weather"
[[scripts.turns]]
text = "sunny"

[[scripts]]
[[scripts.turns]]
text = "default answer"
"""
    model = ScriptedModel(_write(tmp_path, "s.toml", toml))
    assert (await model.complete(_req("What is the WEATHER?"))).text == "sunny"
    assert (await model.complete(_req("Anything else"))).text == "default answer"


async def test_jsonl_scripts_play_one_turn_per_line_and_report_usage(tmp_path: Path) -> None:
    lines = '{"text": "a", "usage": {"input_tokens": 10, "output_tokens": 2, "cache_read_tokens": 5}}\n'
    model = ScriptedModel(_write(tmp_path, "s.jsonl", lines))
    response = await model.complete(_req("t"))
    assert response.usage.input_tokens == 10 and response.usage.cache_read_tokens == 5


async def test_scripted_faults_fire_first_then_the_response(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "f.json",
        [
            {
                "text": "finally",
                "faults": [
                    {"fault": "rate_limit", "retry_after_s": 2},
                    {"fault": "server_error", "status": 503},
                    {"fault": "timeout"},
                ],
            }
        ],
    )
    model = ScriptedModel(path)
    with pytest.raises(RateLimited) as limited:
        await model.complete(_req("t"))
    assert limited.value.retry_after_s == 2
    with pytest.raises(ModelServerError):
        await model.complete(_req("t"))
    with pytest.raises(ModelTimeout):
        await model.complete(_req("t"))
    assert (await model.complete(_req("t"))).text == "finally"

    clock = RecordingClock()
    waits: list[str] = []
    again = ScriptedModel(path)
    response = await complete_with_retries(
        again, _req("t"), clock=clock, policy=RetryPolicy(jitter=0), on_wait=lambda k, s, e: waits.append(k)
    )
    assert response.text == "finally"
    assert waits == ["rate_limited", "retry", "retry"]
    assert clock.slept == [2, 1.0, 2.0]


async def test_a_scripted_client_error_is_classified_by_its_status_as_a_providers_would_be(
    tmp_path: Path,
) -> None:
    faults = [
        {"fault": "client_error", "status": 409},
        {"fault": "client_error", "status": 400, "message": "prompt is too long"},
    ]
    path = _write(tmp_path, "c.json", [{"text": "never", "faults": faults}])
    clock = RecordingClock()
    with pytest.raises(ModelRejected, match=r"\(400\): prompt is too long") as refused:
        await complete_with_retries(ScriptedModel(path), _req("t"), clock=clock, policy=RetryPolicy(jitter=0))
    assert refused.value.status == 400
    assert clock.slept == [1.0], "the 409 was tried again, the 400 was not"
    bad = _write(tmp_path, "b.json", [{"text": "x", "faults": [{"fault": "server_error", "status": 400}]}])
    with pytest.raises(SpecError, match=r"faults\[0\]: a server_error needs a status from 500 to 599"):
        ScriptedModel(bad)


async def test_a_hang_is_caught_by_the_first_chunk_timeout_and_a_stall_by_the_next(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "h.json",
        [
            {
                "text": "a long enough answer to come in several chunks",
                "faults": [{"fault": "hang"}, {"fault": "stall"}],
            }
        ],
    )
    model = ScriptedModel(path, first_chunk_timeout_s=0.05, next_chunk_timeout_s=0.05)
    with pytest.raises(ModelTimeout, match="first"):
        await model.complete(_req("t"))
    beats: list[int] = []
    with pytest.raises(ModelTimeout, match="next"):
        await model.complete(_req("t"), on_chunk=lambda: beats.append(1))
    assert beats, "chunks before the stall were heartbeats"
    assert (await model.complete(_req("t"))).text.startswith("a long")


async def test_persistent_hangs_become_model_unavailable_after_the_bound(tmp_path: Path) -> None:
    path = _write(tmp_path, "h.json", [{"text": "x", "faults": [{"fault": "hang"}] * 3}])
    model = ScriptedModel(path, first_chunk_timeout_s=0.02)
    with pytest.raises(ModelUnavailable):
        await complete_with_retries(
            model, _req("t"), clock=RecordingClock(), policy=RetryPolicy(max_attempts=3)
        )


async def test_a_malformed_tool_call_is_scripted_with_raw_arguments(tmp_path: Path) -> None:
    path = _write(tmp_path, "m.json", [{"tool_calls": [{"name": "post", "raw_arguments": "{oops"}]}])
    (call,) = (await ScriptedModel(path).complete(_req("t"))).tool_calls
    assert call.arguments_error is not None and "not valid JSON" in call.arguments_error


async def test_running_past_the_script_is_a_clear_model_error(tmp_path: Path) -> None:
    model = ScriptedModel(_write(tmp_path, "s.json", [{"tool_calls": [{"name": "x"}]}]))
    first = await model.complete(_req("t"))
    with pytest.raises(ModelError, match="the script has 1 turns; turn 1 was asked for"):
        await model.complete(_req("t", first))


def test_bad_scripts_and_model_strings_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"turns\[0\]: unknown key\(s\) \['txt'\]"):
        ScriptedModel(_write(tmp_path, "a.json", [{"txt": "typo"}]))
    with pytest.raises(SpecError, match="'fault' must be one of"):
        ScriptedModel(_write(tmp_path, "b.json", [{"faults": [{"fault": "boom"}]}]))
    with pytest.raises(SpecError, match="is not valid json"):
        ScriptedModel(_write(tmp_path, "c.json", "{nope"))
    with pytest.raises(SpecError, match="cannot read"):
        ScriptedModel(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="unknown provider 'gemini'"):
        parse_model_string("gemini:pro")
    with pytest.raises(SpecError, match="must look like 'provider:model'"):
        parse_model_string("claude")


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("anthropic:claude-x", "prompt_cache"),
        ("openai:gpt-x", "max_tokens_param"),
        ("scripted:s.json", "clock"),
    ],
)
def test_an_unknown_model_option_is_named(model: str, extra: str) -> None:
    provider = model.partition(":")[0]
    with pytest.raises(
        SpecError, match=f"model option 'timeout' is unknown for {provider}; known: .*{extra}"
    ):
        make_model(model, timeout=5)


def test_an_sdk_models_settings_default_to_the_watchdogs_stall_limits() -> None:
    watchdog = Watchdog()
    for model in (AnthropicModel("claude-x", client=object()), OpenAIModel("gpt-x", client=object())):
        assert model.settings == ModelSettings(client=model.settings.client)
        assert (model.first_chunk_timeout_s, model.next_chunk_timeout_s) == (
            watchdog.first_chunk_s,
            watchdog.next_chunk_s,
        )
    assert ModelSettings.for_watchdog(Watchdog(first_chunk_s=5, next_chunk_s=None)) == {
        "first_chunk_timeout_s": 5.0,
        "next_chunk_timeout_s": None,
    }
    assert ModelSettings.for_watchdog(None) == {}
