"""Keeping a run's conversation inside its model's context window, step by step (see :mod:`._context`).

Before each model call the loop asks :meth:`ContextKeeper.fit`. Below the threshold it returns at
once. Above it, the agent's policy acts, as journaled steps of kind ``compact``:

- ``compact``: the older turns are summarized by the agent's own model, through the loop's model
  call (so the call is priced, budgeted, rate-limited and retried like any other). The journaled
  request is the compaction call's fingerprint with what is folded, so a resumed run that reaches
  the same point gets the same summary back from the journal and pays nothing; a fold too big for
  one call is summarized in chunks, one step each, each folding into the summary so far.
- ``trim``: the older turns are dropped (one step, no model call).
- ``fail``: the run ends with :class:`~beamish.ContextFull`.

A provider that refuses a request as too long (the count fell short: an estimate's error) is not a
failed run: the refusal names the tokens the request took, later counts are scaled by what was
missed, and the conversation is folded at once. The scale is stored in the fold's step, and a
replaying run follows its journal (a recorded ``compact`` step is folded again, with its scale), so
a fold that followed a refusal the journal never saw replays at the same step.

Each fold performed live stores a ``run.compacted`` event: the policy, the steps, the messages
folded, the tokens before and after, the tokens saved and ``why`` (``threshold`` or
``provider_refused``). The conversation that results keeps the
task, a summary (or a note of what was dropped), the pinned tool pairs and the recent turns; a model
request counts the turns folded away (``ModelRequest.compacted_turns``), so a turn's number stays the
same. A request that would still need more than the window is never sent.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn

from beamish._events import Event
from beamish._exceptions import AbortRun, ModelRejected
from beamish._exits import ContextFull
from beamish.agent._context import (
    COMPACT_SYSTEM,
    TARGET,
    TRIMMED_NOTE,
    ContextLimit,
    Fold,
    compaction_prompt,
    plan_fold,
    previous_summary,
    render,
    resolve_window,
    summary_message,
)
from beamish.agent._messages import Message, ModelRequest, ModelResponse
from beamish.agent._tokens import input_tokens
from beamish.journal import Run
from beamish.journal._replay import RunJournal, StepResult

#: How providers word a refusal for length (Anthropic, OpenAI and compatible servers, the scripted model).
_TOO_LONG = re.compile(
    r"prompt is too long|context.length|context window|maximum context|too many tokens|input is too long"
    r"|reduce the length",
    re.IGNORECASE,
)
_TOKENS = re.compile(r"(\d[\d,]*)\s*(?:tokens|-token)")


class ContextKeeper:
    """One run's context management: when to fold, what, and the journaled steps that do it.

    ``loop`` is the agent's ``RunLoop`` (its spec, model, tools, store and model call are used).
    """

    def __init__(self, loop: Any, run: Run, journal: RunJournal) -> None:
        self.loop = loop
        self.run = run
        self.run_id = run.run_id
        self.journal = journal
        spec = loop.spec
        limit = getattr(spec, "context", None)
        self.limit: ContextLimit | None = limit if isinstance(limit, ContextLimit) else None
        self.model_name: str = loop.model.name
        fallbacks = getattr(getattr(loop, "fallbacks", None), "models", None)
        #: The agent's models (its fallbacks too): a request must fit whichever one answers it.
        self.models: list[Any] = list(fallbacks) if fallbacks else [loop.model]
        self.window = None if self.limit is None else self._window(self.limit)
        #: Model answers folded away so far: requests count them in ``turn``.
        self.compacted_turns = 0
        #: Compactions and trims this run has done (live or replayed).
        self.folds = 0
        #: What counts are multiplied by: 1 until a provider refuses a request the count said fit.
        self.scale = 1.0
        self._last_input = 0

    def request(self, messages: list[Message], *, compacted_turns: int | None = None) -> ModelRequest:
        spec = self.loop.spec
        return ModelRequest(
            system=spec.instructions,
            messages=tuple(messages),
            tools=self.loop._schemas,
            max_tokens=spec.max_tokens,
            compacted_turns=self.compacted_turns if compacted_turns is None else compacted_turns,
        )

    def _window(self, limit: ContextLimit) -> int | None:
        """The smallest window of the agent's models that has one (the configured one if set)."""
        known = [w for m in self.models if (w := resolve_window(limit, m, m.name)) is not None]
        return min(known) if known else None

    def _input(self, request: ModelRequest) -> int:
        """The input tokens of ``request`` by the most cautious of the agent's models' counts."""
        return max(input_tokens(m.name, request) for m in self.models)

    def needs(self, request: ModelRequest) -> int:
        """The tokens of the window ``request`` takes: its input (times :attr:`scale`, learned from
        a provider that refused a request the count said would fit) and its output cap."""
        return math.ceil(self._input(request) * self.scale) + request.max_tokens

    def overflowed(self, error: BaseException) -> bool:
        """True when ``error`` is the provider refusing a request as too long for the window: the
        count was short, and :meth:`fit` with ``refused=error`` folds the conversation anyway."""
        if self.limit is None or self.window is None or not isinstance(error, ModelRejected):
            return False
        return error.status in (400, 413) and _TOO_LONG.search(str(error)) is not None

    def _learn(self, error: BaseException) -> None:
        """Scale later counts by what the refusal says the request took (its largest "N tokens"),
        at least 10 % more than before: the same request must not be refused twice."""
        said = [int(n.replace(",", "")) for n in _TOKENS.findall(str(error))]
        counted = max(1, self._last_input)
        wanted = max(said) / counted if said else 0.0
        self.scale = round(max(self.scale * 1.1, wanted * 1.05), 4)

    async def fit(self, seq: int, messages: list[Message], *, refused: BaseException | None = None) -> int:
        """Make the next request fit (folding ``messages`` in place); the next step number.

        ``refused``: the provider's refusal of the last request as too long (see :meth:`overflowed`);
        the fold then happens whatever the count says. A replayed run follows its journal: a
        recorded ``compact`` step at ``seq`` is folded again (and free), with the scale it recorded.
        """
        if self.limit is None or self.window is None:
            return seq
        limit, window = self.limit, self.window
        recorded = self.journal.recorded(seq)
        replaying = recorded is not None and recorded.kind == "compact"
        if refused is not None:
            self._learn(refused)
        elif replaying and recorded is not None and isinstance(recorded.response, dict):
            self.scale = float(recorded.response.get("context_scale", self.scale))
        request = self.request(messages)
        self._last_input = self._input(request)
        before = math.ceil(self._last_input * self.scale) + request.max_tokens
        forced = refused is not None or replaying
        if before <= limit.threshold * window and not forced:
            return seq
        if limit.policy == "fail":
            why = f"the conversation reached the {limit.threshold:.0%} threshold and the policy is 'fail'"
            if refused is not None:
                why = f"the provider refused it as too long and the policy is 'fail' ({refused})"
            self._full(before, why)
        base = self.needs(self.request(messages[:1]))
        summary_cap = self._summary_cap()
        budget = math.floor(TARGET * limit.threshold * window) - base
        if limit.policy == "compact":
            budget -= summary_cap
        fold = plan_fold(messages, limit.keep_turns, max(budget, 0))
        if fold is None:
            if before <= window and refused is None:
                return seq  # past the threshold, but nothing older to fold and it still fits
            why = "nothing older is left to fold"
            self._full(before, why if refused is None else f"the provider refused it ({refused}); {why}")
        least = self.needs(self.request([fold.task, *fold.pinned, *fold.kept]))
        if least > window:  # no summary can help: say so before paying for one
            self._full(least, "the recent turns alone do not fit")
        start = seq
        cost = 0.0
        if limit.policy == "trim":
            folded_text = TRIMMED_NOTE.format(n=len(fold.folded))
            new = [fold.task, Message(role="user", text=folded_text), *fold.pinned, *fold.kept]
            seq, live = await self._trim_step(seq, fold, before, new)
        else:
            summary, seq, live, cost = await self._compact_steps(seq, fold, before, summary_cap)
            new = [fold.task, summary_message(summary), *fold.pinned, *fold.kept]
        turns_before = sum(1 for m in messages if m.role == "assistant")
        turns_after = sum(1 for m in new if m.role == "assistant")
        folded_turns = self.compacted_turns + turns_before - turns_after
        after = self.needs(self.request(new, compacted_turns=folded_turns))
        if after > window:
            self._full(after, f"still too big after {limit.policy} (the recent turns alone)")
        self.compacted_turns += turns_before - turns_after
        self.folds += 1
        messages[:] = new
        if live:  # a replayed fold was announced by the incarnation that made it
            why = "threshold" if refused is None else "provider_refused"
            await self._announce(fold, (start, seq - 1), (before, after), why, cost)
        return seq

    async def _announce(
        self, fold: Fold, steps: tuple[int, int], tokens: tuple[int, int], why: str, cost: float
    ) -> None:
        """The ``run.compacted`` event of a fold made live."""
        assert self.limit is not None
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "policy": self.limit.policy,
            "model": self.model_name,
            "window": self.window,
            "from_seq": steps[0],
            "to_seq": steps[1],
            "messages_folded": len(fold.folded),
            "messages_pinned": len(fold.pinned),
            "messages_kept": len(fold.kept),
            "tokens_before": tokens[0],
            "tokens_after": tokens[1],
            "tokens_saved": tokens[0] - tokens[1],
            "why": why,
            "scale": self.scale,
        }
        if self.limit.policy == "compact":
            data["cost_usd"] = cost
        await self.loop.store.append_event(Event("run.compacted", self.run_id, data))

    def _summary_cap(self) -> int:
        """The output cap of a compaction call: the agent's, at most an eighth of the window."""
        assert self.window is not None
        return max(64, min(int(self.loop.spec.max_tokens), self.window // 8))

    def _full(self, needed: int, why: str) -> NoReturn:
        assert self.limit is not None and self.window is not None
        raise AbortRun(
            ContextFull(
                window=self.window,
                tokens=needed,
                model=self.model_name,
                policy=self.limit.policy,
                detail=f"a request to {self.model_name} would need {needed} tokens of its "
                f"{self.window}-token context window: {why}",
            )
        )

    async def _trim_step(self, seq: int, fold: Fold, before: int, new: list[Message]) -> tuple[int, bool]:
        meta = {
            "compact": "trim",
            "folded": len(fold.folded),
            "pinned": len(fold.pinned),
            "tokens_before": before,
        }

        async def trim() -> StepResult:
            value = {"trimmed": len(fold.folded), "kept": len(new), "context_scale": self.scale}
            return StepResult(value=value)

        result = await self.journal.model_step(seq, meta, trim, kind="compact", name="trim")
        return seq + 1, not result.replayed

    async def _compact_steps(
        self, seq: int, fold: Fold, before: int, summary_cap: int
    ) -> tuple[str, int, bool, float]:
        """Summarize ``fold.folded`` into the summary so far, in as many calls as it takes."""
        assert self.limit is not None and self.window is not None
        summary, rest = previous_summary(fold.folded)
        lines = [render(m) for m in rest]
        limit = self.window  # the call must fit the window; the threshold is for the conversation
        live, cost, chunk = False, 0.0, 0
        while lines or chunk == 0:
            take = len(lines)
            request = self._compact_request(fold.task.text, summary, lines[:take], summary_cap)
            while take > 1 and self.needs(request) > limit:
                take = max(1, take // 2)
                request = self._compact_request(fold.task.text, summary, lines[:take], summary_cap)
            while self.needs(request) > limit:  # one message too big to quote whole: cut it
                line = lines[0]
                if len(line) < 400:
                    self._full(self.needs(request), "a compaction call cannot fit the task and one message")
                lines[0] = line[: len(line) // 2] + " …[cut]"
                request = self._compact_request(fold.task.text, summary, lines[:take], summary_cap)
            meta = {  # flat and small: the journal keeps it whole for `beamish show`
                "compact": "summarize",
                "model": self.model_name,
                "folded": len(fold.folded),
                "chunk": chunk,
                "lines": take,
                "tokens_before": before,
                "fingerprint": request.fingerprint(),
            }
            info = self.loop._info(self.run, self.journal, seq)

            async def perform(request: ModelRequest = request, info: Any = info) -> StepResult:
                result: StepResult = await self.loop._call_model(info, request)
                return StepResult(
                    value={**result.value, "context_scale": self.scale},
                    messages=[],
                    tokens_in=result.tokens_in,
                    tokens_out=result.tokens_out,
                    cost_usd=result.cost_usd,
                    model=result.model,
                )

            result = await self.journal.model_step(seq, meta, perform, kind="compact", name=self.model_name)
            summary = ModelResponse.from_json(result.value).text.strip()
            live = live or not result.replayed
            cost += result.cost_usd
            lines = lines[take:]
            seq += 1
            chunk += 1
        return summary or "", seq, live, cost

    @staticmethod
    def _compact_request(task: str, summary: str | None, lines: list[str], cap: int) -> ModelRequest:
        return ModelRequest(
            system=COMPACT_SYSTEM,
            messages=(Message(role="user", text=compaction_prompt(task, summary, lines)),),
            max_tokens=cap,
        )
