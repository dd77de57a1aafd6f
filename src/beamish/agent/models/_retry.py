"""Bounded retries around one model call.

A 429 is back-pressure, not a failure: the call waits out ``Retry-After`` (clamped) inside the agent
and tries again, and no restart is counted. 5xx answers and timeouts (stalled streams included) retry
with jittered exponential backoff up to ``max_attempts``, then raise ``ModelUnavailable``. Anything
else (a 400, a bad key) is not retried: it is the caller's to see.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._exceptions import (
    ModelError,
    ModelServerError,
    ModelTimeout,
    ModelUnavailable,
    RateLimited,
    SpecError,
)
from beamish.agent._messages import ModelRequest, ModelResponse
from beamish.agent.models._protocol import ChunkCallback, Model

WaitKind = Literal["rate_limited", "retry"]
#: Told before each wait: why, how long, and the error that caused it.
WaitCallback = Callable[[WaitKind, float, ModelError], Awaitable[None] | None]


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a model call is retried. Defaults are defined here, once."""

    max_attempts: int = 5
    backoff_min_s: float = 1.0
    backoff_max_s: float = 30.0
    jitter: float = 0.2
    default_retry_after_s: float = 5.0
    max_retry_after_s: float = 600.0
    max_rate_limit_waits: int = 100

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise SpecError(f"RetryPolicy.max_attempts must be >= 1, got {self.max_attempts}")
        if not 0 <= self.backoff_min_s <= self.backoff_max_s:
            raise SpecError(
                f"RetryPolicy needs 0 <= backoff_min_s <= backoff_max_s, got {self.backoff_min_s}, "
                f"{self.backoff_max_s}"
            )
        if not 0 <= self.jitter <= 1:
            raise SpecError(f"RetryPolicy.jitter must be within [0, 1], got {self.jitter}")

    def backoff(self, failures: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``failures`` (1-based): doubling from the minimum, capped, jittered."""
        base = min(self.backoff_max_s, self.backoff_min_s * (2 ** max(0, failures - 1)))
        spread = base * self.jitter
        jittered: float = base + (rng or random).uniform(-spread, spread)
        return max(0.0, jittered)

    def rate_limit_wait(self, error: RateLimited) -> float:
        wait = error.retry_after_s if error.retry_after_s is not None else self.default_retry_after_s
        return min(max(0.0, wait), self.max_retry_after_s)


async def complete_with_retries(
    model: Model,
    request: ModelRequest,
    *,
    policy: RetryPolicy | None = None,
    clock: Clock = SYSTEM_CLOCK,
    on_chunk: ChunkCallback | None = None,
    on_wait: WaitCallback | None = None,
) -> ModelResponse:
    """Call ``model`` once, retrying 429s, 5xx and timeouts per ``policy``."""
    policy = policy or RetryPolicy()
    failures = 0
    rate_limited = 0
    while True:
        try:
            return await model.complete(request, on_chunk=on_chunk)
        except RateLimited as exc:
            rate_limited += 1
            if rate_limited > policy.max_rate_limit_waits:
                raise
            await _wait(on_wait, "rate_limited", policy.rate_limit_wait(exc), exc, clock)
        except (ModelServerError, ModelTimeout) as exc:
            failures += 1
            if failures >= policy.max_attempts:
                raise ModelUnavailable(f"{model.name} failed {failures} times in a row; last: {exc}") from exc
            await _wait(on_wait, "retry", policy.backoff(failures), exc, clock)


async def _wait(
    on_wait: WaitCallback | None, kind: WaitKind, seconds: float, error: ModelError, clock: Clock
) -> None:
    if on_wait is not None:
        pending = on_wait(kind, seconds, error)
        if pending is not None:
            await pending
    await clock.sleep(seconds)
