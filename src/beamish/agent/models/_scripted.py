"""``scripted:<file>``: a deterministic model that plays a file of responses.

For tests and the offline demo — it is named "scripted" wherever it shows (its ``name``, its
responses' ``model``), so nobody mistakes its answers for a real model's.

The answer to a request is chosen by the request alone, never by how many calls this process made:
turn ``n`` (the number of assistant turns already in the conversation) plays ``turns[n]`` of the
script whose ``when`` occurs in the task (the first user message), or of the script without ``when``.
So a restarted agent that replays six calls from its journal gets turn seven live, as it should.

A turn may list ``faults`` that fire, in order, on its first attempts in this process, before the
response is given: ``{"fault": "rate_limit", "retry_after_s": 2}``, ``{"fault": "server_error",
"status": 500}``, ``{"fault": "client_error", "status": 400, "message": "prompt is too long"}`` (both
classified by status as a provider's answer is: 408 and 409 are transient, any other 4xx fails the
run), ``{"fault": "timeout"}``, ``{"fault": "hang"}`` (no first chunk, ever) and ``{"fault":
"stall"}`` (some chunks, then silence). A tool call with ``raw_arguments`` instead of
``arguments`` sends that text verbatim: a malformed tool call. In a text, ``{task}`` is the task and
``{last_tool}`` the latest tool result.

File formats, by suffix: ``.json`` (a list of turns, ``{"turns": [...]}`` or
``{"scripts": [{"when": ..., "turns": [...]}, ...]}``), ``.jsonl`` (one turn per line) and
``.toml`` (``[[turns]]`` or ``[[scripts]]`` with ``[[scripts.turns]]``). A top-level ``call_log``
(a file path) gets one JSON line per call — attempts included, each played fault named (``"fault"``),
with the input tokens it was sent (``"tokens"``) — so a test can count the calls made and the faults
played across processes and restarts.

A top-level ``context_window`` (tokens) declares a window, as a provider's model has one: a request
whose input and ``max_tokens`` need more is refused as a provider refuses it (400 "prompt is too
long", logged with ``"over_window": true``). A compaction call (``beamish.agent._context``) is not
a turn of the script: it is answered with the top-level ``summary`` text (``{chars}`` is the size
of what it was asked to fold; default ``"(scripted summary of {chars} characters)"``) and logged
with ``"compact": true``. A top-level ``counter_scale`` (default 1) makes the offline counter this
model offers report that share of the tokens it bills and checks against its window: a count that
falls short, as an estimate can, for testing what happens then (a budget reserves short too).
"""

from __future__ import annotations

import asyncio
import json
import os
import tomllib
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._exceptions import ModelError, ModelTimeout, RateLimited, SpecError
from beamish.agent._bound import register_input_counter, sent_bytes
from beamish.agent._context import is_compaction
from beamish.agent._messages import ModelRequest, ModelResponse, ToolCall, Usage
from beamish.agent.models._errors import error_for_status
from beamish.agent.models._protocol import ChunkCallback, guard_stream

_FAULTS = frozenset({"rate_limit", "server_error", "client_error", "timeout", "hang", "stall"})
#: The HTTP statuses (default first) an error answer of each kind may carry.
_STATUSES = {"server_error": (500, 599), "client_error": (400, 499)}
_TURN_KEYS = frozenset({"text", "tool_calls", "usage", "faults", "stop_reason", "delay_s"})
_CHUNK = 16


@dataclass(frozen=True)
class _Turn:
    text: str
    tool_calls: tuple[dict[str, Any], ...]
    usage: dict[str, int] | None
    faults: tuple[dict[str, Any], ...]
    stop_reason: str | None
    delay_s: float


@dataclass(frozen=True)
class _Script:
    when: str | None
    turns: tuple[_Turn, ...] = field(default_factory=tuple)


def _turn(data: Any, where: str) -> _Turn:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: a turn must be a table/object, got {type(data).__name__}")
    unknown = set(data) - _TURN_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TURN_KEYS)}")
    calls = data.get("tool_calls", [])
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or "name" not in call:
            raise SpecError(f"{where}.tool_calls[{i}]: needs a 'name'")
    faults = data.get("faults", [])
    for i, fault in enumerate(faults):
        if not isinstance(fault, dict) or fault.get("fault") not in _FAULTS:
            raise SpecError(f"{where}.faults[{i}]: 'fault' must be one of {sorted(_FAULTS)}, got {fault!r}")
        low, high = _STATUSES.get(fault["fault"], (0, 0))
        status = fault.get("status", low)
        if high and (not isinstance(status, int) or not low <= status <= high):
            raise SpecError(
                f"{where}.faults[{i}]: a {fault['fault']} needs a status from {low} to {high}, got {status!r}"
            )
    return _Turn(
        text=str(data.get("text", "")),
        tool_calls=tuple(calls),
        usage=data.get("usage"),
        faults=tuple(faults),
        stop_reason=data.get("stop_reason"),
        delay_s=float(data.get("delay_s", 0.0)),
    )


def load_script(path: str | Path) -> tuple[tuple[_Script, ...], str | None]:
    """Read and validate a script file: its scripts and its ``call_log`` path (or None).

    A bad file is a ``SpecError`` naming the file and the key.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"scripted model: cannot read {p}: {exc.strerror}") from exc
    try:
        if p.suffix == ".jsonl":
            data: Any = {"turns": [json.loads(line) for line in text.splitlines() if line.strip()]}
        elif p.suffix == ".json":
            data = json.loads(text)
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise SpecError(f"scripted model: {p} must end in .json, .jsonl or .toml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"scripted model: {p} is not valid {p.suffix[1:]}: {exc}") from exc
    if isinstance(data, list):
        data = {"turns": data}
    if not isinstance(data, dict) or not ({"turns", "scripts"} & set(data)):
        raise SpecError(f"scripted model: {p} needs 'turns' or 'scripts'")
    raw = data["scripts"] if "scripts" in data else [{"turns": data["turns"]}]
    scripts = []
    for i, s in enumerate(raw):
        where = f"{p}: scripts[{i}]" if "scripts" in data else f"{p}"
        turns = tuple(_turn(t, f"{where}.turns[{j}]") for j, t in enumerate(s.get("turns", [])))
        if not turns:
            raise SpecError(f"{where}: has no turns")
        scripts.append(_Script(when=s.get("when"), turns=turns))
    call_log = data.get("call_log")
    if call_log is not None and not isinstance(call_log, str):
        raise SpecError(f"scripted model: {p}: call_log must be a file path")
    return tuple(scripts), call_log


def script_options(path: str | Path) -> tuple[int | None, str, float]:
    """A script file's ``context_window`` (None: unlimited), ``summary`` text and ``counter_scale``."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    data: Any = tomllib.loads(text) if p.suffix == ".toml" else None
    if p.suffix == ".json":
        data = json.loads(text)
    data = data if isinstance(data, dict) else {}
    window = data.get("context_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise SpecError(f"scripted model: {p}: context_window must be a whole number of tokens >= 1")
    summary = data.get("summary", "(scripted summary of {chars} characters)")
    if not isinstance(summary, str):
        raise SpecError(f"scripted model: {p}: summary must be text")
    scale = data.get("counter_scale", 1.0)
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not 0 < scale <= 1:
        raise SpecError(f"scripted model: {p}: counter_scale must be a number, 0 < x <= 1")
    return window, summary, float(scale)


#: The options a scripted model takes: no key, URL or client, and no stall limit unless one is set
#: (a script answers at once; a test that plays a stall sets one).
OPTIONS = ("first_chunk_timeout_s", "next_chunk_timeout_s", "clock")


class ScriptedModel:
    """Plays a script file; see the module docstring for the format. Deterministic by construction."""

    provider = "scripted"

    def __init__(
        self,
        path: str | Path,
        *,
        first_chunk_timeout_s: float | None = None,
        next_chunk_timeout_s: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = Path(path)
        self.model = str(path)
        self.name = f"scripted:{path}"
        self.scripts, self.call_log = load_script(self.path)
        #: The window this model declares (the script's ``context_window``), None for unlimited.
        self.context_window, self._summary, self._counter_scale = script_options(self.path)
        self.first_chunk_timeout_s = first_chunk_timeout_s
        self.next_chunk_timeout_s = next_chunk_timeout_s
        self._clock = clock
        self._attempts: dict[tuple[int, int], int] = {}
        #: Calls answered by this instance (faults included): what a test counts as "made live".
        self.calls = 0
        _LIVE[self.name] = self

    def _script_for(self, task: str) -> int:
        lowered = task.lower()
        for i, script in enumerate(self.scripts):
            if script.when is not None and script.when.lower() in lowered:
                return i
        for i, script in enumerate(self.scripts):
            if script.when is None:
                return i
        raise ModelError(f"{self.name}: no script matches the task {task[:80]!r} and none is the default")

    def _turn_for(self, request: ModelRequest) -> tuple[int, int, _Turn]:
        """``(script index, turn number, turn)`` that answers ``request`` (chosen by it alone)."""
        task = next((m.text for m in request.messages if m.role == "user"), "")
        index = self._script_for(task)
        script = self.scripts[index]
        n = request.turn
        if n >= len(script.turns):
            raise ModelError(f"{self.name}: the script has {len(script.turns)} turns; turn {n} was asked for")
        return index, n, script.turns[n]

    def input_tokens(self, request: ModelRequest) -> int | None:
        """The input tokens the answer to ``request`` will report: this model's offline token
        counter, which a budget reserves by (None when no turn answers it: the call will fail);
        ``counter_scale`` of them when the script sets one."""
        billed = self._billed_tokens(request)
        if billed is None or self._counter_scale == 1.0:
            return billed
        return max(1, int(billed * self._counter_scale))

    def _billed_tokens(self, request: ModelRequest) -> int | None:
        if is_compaction(request):
            return _input_tokens(request)
        try:
            _, _, turn = self._turn_for(request)
        except ModelError:
            return None
        if turn.usage is not None:
            usage = Usage.from_json(turn.usage)
            return usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        return _input_tokens(request)

    async def complete(
        self, request: ModelRequest, *, on_chunk: ChunkCallback | None = None
    ) -> ModelResponse:
        self.calls += 1
        self._check_window(request)
        if is_compaction(request):
            return self._summarize(request)
        task = next((m.text for m in request.messages if m.role == "user"), "")
        index, n, turn = self._turn_for(request)
        attempt = self._attempts.get((index, n), 0)
        self._attempts[(index, n)] = attempt + 1
        fault = turn.faults[attempt] if attempt < len(turn.faults) else None
        if self.call_log is not None:
            entry: dict[str, Any] = {"script": index, "turn": n, "pid": os.getpid()}
            entry.update(tokens=self._billed_tokens(request), max_tokens=request.max_tokens)
            if fault is not None:
                entry["fault"] = dict(fault)
            with open(self.call_log, "a", encoding="utf-8") as log:
                log.write(json.dumps(entry) + "\n")
        if fault is not None:
            kind = fault["fault"]
            if kind == "rate_limit":
                raise RateLimited(f"{self.name}: scripted 429", retry_after_s=fault.get("retry_after_s"))
            if kind in _STATUSES:  # classified by its status, as a provider's answer is
                status = int(fault.get("status", _STATUSES[kind][0]))
                message = str(fault.get("message", f"scripted {status}"))
                raise error_for_status(self.name, status, message=message)
            if kind == "timeout":
                raise ModelTimeout(f"{self.name}: scripted timeout")
        last_tool = next((m.text for m in reversed(request.messages) if m.role == "tool"), "")
        text = turn.text.replace("{task}", task).replace("{last_tool}", last_tool)
        if turn.delay_s:
            await self._clock.sleep(turn.delay_s)
        pieces: list[str] = []
        async for piece in guard_stream(
            self._chunks(text, fault["fault"] if fault else None),
            first_chunk_timeout_s=self.first_chunk_timeout_s,
            next_chunk_timeout_s=self.next_chunk_timeout_s,
            on_chunk=on_chunk,
            clock=self._clock,
            what=f"{self.name} stream",
        ):
            pieces.append(piece)
        calls = tuple(self._call(n, i, c) for i, c in enumerate(turn.tool_calls))
        return ModelResponse(
            text="".join(pieces),
            tool_calls=calls,
            usage=self._usage(request, text, turn),
            stop_reason=turn.stop_reason or ("tool_use" if calls else "end_turn"),
            model=self.name,
        )

    def _log(self, entry: dict[str, Any]) -> None:
        if self.call_log is not None:
            with open(self.call_log, "a", encoding="utf-8") as log:
                log.write(json.dumps({**entry, "pid": os.getpid()}) + "\n")

    def _check_window(self, request: ModelRequest) -> None:
        """Refuse a request over the declared window, as a provider does (400, not retried)."""
        if self.context_window is None:
            return
        tokens = self._billed_tokens(request) or _input_tokens(request)
        if tokens + request.max_tokens > self.context_window:
            self._log({"over_window": True, "tokens": tokens, "max_tokens": request.max_tokens})
            raise error_for_status(
                self.name,
                400,
                message=f"prompt is too long: {tokens} tokens + max_tokens {request.max_tokens} > "
                f"the {self.context_window}-token context window",
            )

    def _summarize(self, request: ModelRequest) -> ModelResponse:
        """A compaction call's answer: the script's ``summary`` text, deterministic by the request."""
        chars = sum(len(m.text) for m in request.messages)
        tokens = _input_tokens(request)
        self._log({"compact": True, "tokens": tokens, "max_tokens": request.max_tokens})
        text = self._summary.replace("{chars}", str(chars))
        output = min(max(1, len(text.encode()) // 4), max(1, request.max_tokens))
        usage = Usage(input_tokens=tokens, output_tokens=output)
        return ModelResponse(text=text, usage=usage, stop_reason="end_turn", model=self.name)

    async def _chunks(self, text: str, fault: str | None) -> AsyncIterator[str]:
        if fault == "hang":
            await asyncio.Event().wait()
        parts = [text[i : i + _CHUNK] for i in range(0, len(text), _CHUNK)] or [""]
        for i, part in enumerate(parts):
            if fault == "stall" and i == max(1, len(parts) // 2):
                await asyncio.Event().wait()
            yield part
        if fault == "stall" and len(parts) == 1:
            await asyncio.Event().wait()

    @staticmethod
    def _call(turn: int, i: int, spec: dict[str, Any]) -> ToolCall:
        call_id = str(spec.get("id") or f"call_{turn}_{i}")
        if "raw_arguments" in spec:
            return ToolCall.parse(call_id, str(spec["name"]), str(spec["raw_arguments"]))
        return ToolCall(id=call_id, name=str(spec["name"]), arguments=dict(spec.get("arguments", {})))

    @staticmethod
    def _usage(request: ModelRequest, text: str, turn: _Turn) -> Usage:
        """The turn's declared usage, as given (a script may declare what no provider could bill);
        else ~4 bytes a token of what was sent and produced, output stopped at ``max_tokens``."""
        if turn.usage is not None:
            return Usage.from_json(turn.usage)
        produced = len(text.encode()) + sum(len(json.dumps(c)) for c in turn.tool_calls)
        output = min(max(1, produced // 4), max(1, request.max_tokens))
        return Usage(input_tokens=_input_tokens(request), output_tokens=output)

    async def aclose(self) -> None:
        return None


def _input_tokens(request: ModelRequest) -> int:
    return max(1, sent_bytes(request) // 4)


#: The scripted models alive in this process, by name: the offline counter a budget asks.
_LIVE: weakref.WeakValueDictionary[str, ScriptedModel] = weakref.WeakValueDictionary()


def _count(name: str, request: ModelRequest) -> int | None:
    model = _LIVE.get(name)
    return None if model is None else model.input_tokens(request)


register_input_counter("scripted", _count)
