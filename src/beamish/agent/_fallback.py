"""Fallback models: one step, tried on the agent's models in order until one answers.

An agent may name several models (``model = ["anthropic:…", "openai:…"]``). A step goes to the
first; once its retries are spent on overload (429, 529), 5xx or timeouts, the *same* step (same
request, same journal seq) goes to the next. A refusal (any other 4xx) does not fall back: the next
model would refuse the same request for the same reason, or worse, answer a malformed one. Each
model's own calls are priced, budgeted and rate-limited as that model (the loop's ``attempt`` is
called with it), so spend follows the model that answered, and so does the journal's record.

Two things make a step leave a model early. Its circuit breaker (:mod:`beamish.agent._breaker`,
shared through the store) is open: the model is skipped without a request. Or the run has a
deadline and less time is left than a full retry cycle: the model gets one attempt, not its
retries, and a wait that would cross the deadline is not waited. The last model keeps its full
retries: there is nothing after it, and a late answer is still flagged by the deadline check.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import ModelError, ModelUnavailable, RateLimited
from beamish.agent._breaker import Breaker
from beamish.agent._hooks import RunInfo
from beamish.agent.models._protocol import Model
from beamish.agent.models._retry import RetryPolicy, WaitKind
from beamish.journal._replay import StepResult

logger = logging.getLogger("beamish.agent")

#: Told of each failed attempt before its wait; may raise to leave the model (see ``Fallbacks``).
Guard = Callable[[WaitKind, float, ModelError], Awaitable[None]]
#: ``attempt(info, model, policy, guard)``: one model's call with its retries, as the loop makes it.
Attempt = Callable[[RunInfo, Model, RetryPolicy, Guard], Awaitable[StepResult]]


class _MoveOn(Exception):
    """Leave this model for the next one now, without the waits left."""

    def __init__(self, error: ModelError, why: str) -> None:
        self.error, self.why = error, why
        super().__init__(why)


def retry_cycle_s(policy: RetryPolicy) -> float:
    """How long one model's full retries wait (backoff without jitter): the time a deadline must
    leave for a step to afford them."""
    waits = (
        min(policy.backoff_max_s, policy.backoff_min_s * 2.0 ** (n - 1))
        for n in range(1, policy.max_attempts)
    )
    return float(sum(waits))


@dataclass
class Fallbacks:
    """An agent's models in order, the store's breakers, and where events go."""

    models: Sequence[Model]
    clock: Clock
    breaker: Breaker | None = None
    emit: Callable[[Event], Awaitable[None]] | None = None

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]

    async def call(
        self, info: RunInfo, policy: RetryPolicy, deadline: float | None, attempt: Attempt
    ) -> StepResult:
        """Step ``info.seq`` on the first model that answers; the last model's error otherwise."""
        last_error: ModelError | None = None
        for index, model in enumerate(self.models):
            has_next = index < len(self.models) - 1
            admission = await self.breaker.admit(model.name) if self.breaker is not None else "closed"
            if admission == "open" and has_next:
                await self._fell_back(info, model, index, "its circuit breaker is open", None)
                continue
            hurry = deadline is not None and deadline - self.clock.time() < retry_cycle_s(policy)
            own = self._policy(policy, has_next, hurry)
            guard = self._guard(model, has_next, deadline)
            try:
                result = await attempt(replace(info, model=model.name), model, own, guard)
            except _MoveOn as move:
                last_error = move.error
                await self._fell_back(info, model, index, move.why, move.error)
                continue
            except (ModelUnavailable, RateLimited) as exc:
                if self.breaker is not None:
                    await self.breaker.failed(model.name, exc)
                if not has_next:
                    raise
                last_error = exc
                why = "it failed once with the deadline near" if hurry else "its retries are spent"
                await self._fell_back(info, model, index, why, exc)
                continue
            except ModelError:
                # a refusal: the provider is up (a probe that meets one has found it so), the
                # request is at fault, and no other model is asked
                if self.breaker is not None:
                    await self.breaker.succeeded(model.name)
                raise
            if self.breaker is not None:
                await self.breaker.succeeded(model.name)
            return result
        raise ModelUnavailable(f"every model of the agent failed: {self.names}") from last_error

    def _policy(self, policy: RetryPolicy, has_next: bool, hurry: bool) -> RetryPolicy:
        if not has_next:
            return policy
        if hurry:  # one attempt, then the next model
            return replace(policy, max_attempts=1, max_rate_limit_waits=0)
        # with a model after this one, a 429 counts like any failed attempt: after the retries, move on
        return replace(policy, max_rate_limit_waits=min(policy.max_rate_limit_waits, policy.max_attempts - 1))

    def _guard(self, model: Model, has_next: bool, deadline: float | None) -> Guard:
        async def guard(kind: WaitKind, seconds: float, error: ModelError) -> None:
            opened = await self.breaker.failed(model.name, error) if self.breaker is not None else False
            if not has_next:
                return
            if opened:
                raise _MoveOn(error, "its circuit breaker opened")
            if deadline is not None and self.clock.time() + seconds >= deadline:
                raise _MoveOn(error, f"waiting {seconds:.1f}s more would miss the run's deadline")

        return guard

    async def _fell_back(
        self, info: RunInfo, model: Model, index: int, why: str, error: BaseException | None
    ) -> None:
        to = self.models[index + 1].name
        level = logging.INFO if error is None else logging.WARNING  # an open breaker's skip is routine
        logger.log(level, "run %s step %d: %s → %s (%s)", info.run_id, info.seq, model.name, to, why)
        if self.emit is None:
            return
        data: dict[str, Any] = {
            "run_id": info.run_id,
            "agent": info.agent,
            "seq": info.seq,
            "from": model.name,
            "to": to,
            "why": why,
        }
        if error is not None:
            data["error"] = str(error)[:300]
        await self.emit(Event("model.fallback", info.run_id, data))
