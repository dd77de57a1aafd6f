"""Context windows: how big a model's is, how much of it a request takes, what to fold when it fills.

An agent's conversation grows every turn; past its model's context window the provider answers 400
and the run dies. :class:`ContextLimit` (``AgentSpec.context``, ``[agents.NAME.context]`` in
``beamish.toml``) says how big the window is and what the agent does before a request would fill it.

- **The window** is ``ContextLimit.window`` when set, else what the model declares (a scripted
  model's ``context_window``), else the offline ``genai-prices`` data's ``context_window`` for the
  model; with fallback models, the smallest of theirs (a request must fit whichever answers). A
  model none of them knows (an OpenAI-compatible local server, say) is not managed: set ``window``
  for it.
- **Counting.** A request *needs* its input tokens plus its ``max_tokens`` (OpenAI and Anthropic
  both refuse a request whose input and output cap do not fit together). The input is counted by the
  model's own offline counter where it has one (the scripted model's is exact), else estimated
  (:mod:`._tokens`: a count of the pre-tokens byte-level BPE splits text into, plus 25 %; measured
  against ``cl100k_base``, it over-counts prose and code by about a third and under-counts none of
  the samples, digits, JSON, CJK and base64 included).
- **At the threshold** (the request needs more than ``threshold * window``) the ``policy`` acts:
  ``"compact"`` (the default) folds the older turns into a summary written by the model — a
  journaled step of kind ``compact``, so a resumed run replays it instead of paying for it again;
  ``"trim"`` drops the older turns with no model call (also a ``compact`` step, named ``trim``);
  ``"fail"`` ends the run with :class:`~beamish.ContextFull`, which names the window. Either way the
  run keeps the task (the first user message), the last ``keep_turns`` turns and the older tool
  results those turns still refer to (by call id, or by an identifier such as ``ORD-1234`` or a URL
  quoted from the result); a tool call and its result are never separated. A request that would
  still need more than the window is never sent: the run ends with ``ContextFull`` instead.
- **A short count** shows as the provider refusing a request for its length (unbilled): the agent
  scales its later counts by what the refusal says it under-counted and folds at once (see
  :meth:`~beamish.agent._compaction.ContextKeeper.fit`).

This module is pure (no journal, no I/O): :mod:`._compaction` performs the steps.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from beamish._exceptions import SpecError
from beamish.agent._messages import Message, ModelRequest
from beamish.agent._tokens import message_tokens

#: The defaults, stated once (``beamish.toml``'s ``[agents.NAME.context]`` too).
THRESHOLD = 0.8
KEEP_TURNS = 4
POLICIES = ("compact", "trim", "fail")
#: After a compaction the conversation aims at this share of the threshold, so the next one is
#: turns away rather than one turn away.
TARGET = 0.5
#: The system prompt of a compaction call: models (the scripted one too) recognise it by this start.
COMPACT_SYSTEM = (
    "You compact an agent's conversation. Summarize the conversation you are given so the agent "
    "can continue its task from the summary alone: keep every decision made, every fact found, "
    "identifiers, numbers and names exactly, what was done with side effects (so it is not done "
    "again), and what remains to do. Write plain text, no preamble."
)

Policy = Literal["compact", "trim", "fail"]


@dataclass(frozen=True)
class ContextLimit:
    """How big an agent's context window is and what the agent does as it fills.

    ``window``: the model's context window in tokens (None: the model's own, or genai-prices'; see
    :mod:`beamish.agent._context`). ``threshold``: the share of the window a request may need
    before ``policy`` acts (default 0.8). ``policy``: ``"compact"`` (summarize older turns with a
    model call, journaled as a ``compact`` step), ``"trim"`` (drop older turns, no model call) or
    ``"fail"`` (the run fails with :class:`~beamish.ContextFull`). ``keep_turns``: the most recent
    turns (a model answer and its tool results) kept verbatim (fewer when they alone fill half the
    threshold). ``AgentSpec(context=None)`` switches all of it off.
    """

    window: int | None = None
    threshold: float = THRESHOLD
    policy: Policy = "compact"
    keep_turns: int = KEEP_TURNS

    def __post_init__(self) -> None:
        if self.window is not None and (
            isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 64
        ):
            raise SpecError(f"ContextLimit: window={self.window!r} is invalid: expected whole tokens >= 64")
        if (
            isinstance(self.threshold, bool)
            or not isinstance(self.threshold, int | float)
            or not 0 < self.threshold <= 1
        ):
            raise SpecError(f"ContextLimit: threshold={self.threshold!r} is invalid: expected 0 < x <= 1")
        object.__setattr__(self, "threshold", float(self.threshold))
        if self.policy not in POLICIES:
            raise SpecError(
                f"ContextLimit: policy={self.policy!r} is invalid: expected one of {list(POLICIES)}"
            )
        if isinstance(self.keep_turns, bool) or not isinstance(self.keep_turns, int) or self.keep_turns < 1:
            raise SpecError(
                f"ContextLimit: keep_turns={self.keep_turns!r} is invalid: expected a whole number >= 1"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "context") -> ContextLimit:
        """Build from config or :meth:`to_json`, naming an unknown key."""
        if "v" in data and data["v"] != 1:
            raise SpecError(f"{where}: version {data['v']!r} is not one this beamish reads (1)")
        known = {"window", "threshold", "policy", "keep_turns"}
        unknown = sorted(set(data) - known - {"v"})
        if unknown:
            raise SpecError(f"{where}: unknown key {unknown[0]!r}; expected one of {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k != "v"})

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "window": self.window,
            "threshold": self.threshold,
            "policy": self.policy,
            "keep_turns": self.keep_turns,
        }


# -- the window -------------------------------------------------------------------------------------
@functools.cache
def catalogue_window(model: str) -> int | None:
    """``model``'s context window in the offline genai-prices data (None when it has none)."""
    provider, sep, name = model.partition(":")
    if not sep or provider == "scripted":
        return None
    from genai_prices import data_snapshot

    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(name, None, provider, None)
    except LookupError:
        return None
    window = getattr(info, "context_window", None)
    return int(window) if isinstance(window, int) and window > 0 else None


def resolve_window(limit: ContextLimit, model: Any, name: str) -> int | None:
    """The window an agent's requests must fit: configured, else the model's own, else the data's."""
    if limit.window is not None:
        return limit.window
    declared = getattr(model, "context_window", None)
    if isinstance(declared, int) and not isinstance(declared, bool) and declared > 0:
        return declared
    return catalogue_window(name)


# -- what to fold -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fold:
    """A conversation split for compaction: ``task`` (kept), ``folded`` (summarized or dropped),
    ``pinned`` (older tool calls with results still referenced, kept verbatim) and ``kept`` (the
    recent turns)."""

    task: Message
    folded: tuple[Message, ...]
    pinned: tuple[Message, ...]
    kept: tuple[Message, ...]


def turns(messages: Sequence[Message]) -> tuple[list[Message], list[list[Message]]]:
    """The messages before the first model answer, and the turns: each model answer with what
    follows it (its tool results, a nudge), so a call and its result are always in one turn."""
    head: list[Message] = []
    groups: list[list[Message]] = []
    for message in messages:
        if message.role == "assistant":
            groups.append([message])
        elif groups:
            groups[-1].append(message)
        else:
            head.append(message)
    return head, groups


_HANDLE = re.compile(r"[A-Za-z0-9][\w\-./:#@?=&%+~]{5,}")


def handles(text: str) -> set[str]:
    """Identifiers in a tool result that a later turn may quote: words of 6+ characters holding a
    digit or a ``-_./:#@`` (ids, paths, URLs, amounts), not plain words."""
    return {
        h.rstrip(".,:;")
        for h in _HANDLE.findall(text)
        if any(ch.isdigit() or ch in "-_./:#@" for ch in h.rstrip(".,:;")) and len(h.rstrip(".,:;")) >= 6
    }


def _referenced(call_id: str | None, result: str, later: str) -> bool:
    if call_id and call_id in later:
        return True
    return any(h in later for h in handles(result))


def plan_fold(
    messages: Sequence[Message],
    keep_turns: int,
    keep_budget: int,
    *,
    size: Callable[[Message], int] = message_tokens,
) -> Fold | None:
    """What to fold so the kept part needs at most ``keep_budget`` tokens (``size`` counts one
    message): the last ``keep_turns`` turns or fewer (always the last one), and the older tool
    pairs they still refer to, newest first, while they fit. None when nothing would be folded."""
    if not messages:
        return None
    task, rest = messages[0], messages[1:]
    head, groups = turns(rest)
    kept: list[list[Message]] = []
    used = 0
    for group in reversed(groups):
        cost = sum(size(m) for m in group)
        if kept and (len(kept) >= keep_turns or used + cost > keep_budget):
            break
        kept.insert(0, group)
        used += cost
    older = groups[: len(groups) - len(kept)]
    if not head and not older:
        return None
    kept_messages = [m for g in kept for m in g]
    later = "\n".join(m.text + json.dumps([c.to_json() for c in m.tool_calls]) for m in kept_messages)
    pinned: list[list[Message]] = []
    for group in reversed(older):
        answer = group[0]
        for result in reversed(group[1:]):
            if result.role != "tool" or not _referenced(result.tool_call_id, result.text, later):
                continue
            call = next((c for c in answer.tool_calls if c.id == result.tool_call_id), None)
            if call is None:
                continue
            pair = [Message(role="assistant", tool_calls=(call,)), result]
            cost = sum(size(m) for m in pair)
            if used + cost > keep_budget:
                continue
            pinned.insert(0, pair)
            used += cost
    pinned_ids = {pair[1].tool_call_id for pair in pinned}
    folded = list(head)
    for group in older:
        answer = group[0]
        calls = tuple(c for c in answer.tool_calls if c.id not in pinned_ids)
        if calls != answer.tool_calls:
            if answer.text or calls:
                folded.append(Message(role="assistant", text=answer.text, tool_calls=calls))
        else:
            folded.append(answer)
        folded.extend(m for m in group[1:] if m.role != "tool" or m.tool_call_id not in pinned_ids)
    return Fold(task, tuple(folded), tuple(m for pair in pinned for m in pair), tuple(kept_messages))


# -- what a summarizer reads ------------------------------------------------------------------------
#: The longest a single message is quoted to the summarizer (a huge tool result is cut, marked).
QUOTE_CHARS = 20_000
SUMMARY_PREFIX = "[Summary of the conversation so far, written when it outgrew the context window]\n"
TRIMMED_NOTE = "[{n} earlier messages were dropped to fit the context window]"


def render(message: Message) -> str:
    """One message as a line of the transcript a summarizer reads."""
    text = message.text
    if len(text) > QUOTE_CHARS:
        text = text[:QUOTE_CHARS] + f" …[{len(message.text) - QUOTE_CHARS} more characters]"
    if message.role == "assistant":
        calls = "; ".join(
            f"{c.name}({json.dumps(c.arguments, ensure_ascii=False)})" for c in message.tool_calls
        )
        return f"ASSISTANT: {text}" + (f"\n  [calls {calls}]" if calls else "")
    if message.role == "tool":
        label = "TOOL ERROR" if message.is_error else "TOOL RESULT"
        return f"{label} ({message.tool_call_id}): {text}"
    return f"USER: {text}"


def compaction_prompt(task: str, summary: str | None, transcript: Sequence[str]) -> str:
    """The one user message of a compaction call."""
    parts = [f"The agent's task:\n{task}"]
    if summary:
        parts.append(f"The summary so far:\n{summary}")
    parts.append("The conversation to fold into the summary:\n" + "\n".join(transcript))
    parts.append("Write the new summary.")
    return "\n\n".join(parts)


def is_compaction(request: ModelRequest) -> bool:
    """True for a compaction call (a scripted model answers it with a summary)."""
    return request.system == COMPACT_SYSTEM


def summary_message(summary: str) -> Message:
    return Message(role="user", text=SUMMARY_PREFIX + summary)


def previous_summary(folded: Sequence[Message]) -> tuple[str | None, list[Message]]:
    """An earlier compaction's summary among the folded messages (it becomes the new call's
    "summary so far"), and the rest."""
    summary = None
    rest = []
    for m in folded:
        if summary is None and m.role == "user" and m.text.startswith(SUMMARY_PREFIX):
            summary = m.text[len(SUMMARY_PREFIX) :]
        else:
            rest.append(m)
    return summary, rest
