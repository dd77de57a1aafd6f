"""Provider rate limits, shared by every agent, process and node of one store.

A provider limits requests and tokens per minute per model (and sometimes per provider); many runs
at once would meet those limits as a burst of 429s. Here each model call first takes a permit: a row
in ``rate_limit_log`` for every limited key it falls under (``"anthropic:claude-sonnet-4-5"`` and
``"anthropic"``), granted only while the last minute's rows leave room for one more request and its
estimated tokens. Otherwise the call waits, on the injected clock, until the oldest row ages out. A
429's ``Retry-After`` is learned as ``blocked_until`` on the model's key, so every agent waits it out
instead of hitting the same wall; so is the reset of an allowance that a successful answer's
rate-limit headers say is used up (``remaining`` 0), so the wall is not hit at all. The limit those
headers announce is not adopted as the key's limit: its window is the provider's (OpenAI's may be a
day) and it may be shared with callers beamish does not see. The check and the insert are one store
transaction: SQLite's writer lock serialises them, and on PostgreSQL each limited key's row is
locked ``FOR UPDATE``, so two nodes never both take the last slot of a window.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from beamish._clock import Clock
from beamish._exceptions import SpecError
from beamish.agent._messages import RateHint

#: The window providers count in.
WINDOW_S = 60.0
#: How long which keys are limited is cached (a limit or a learned block from elsewhere is seen this late).
REFRESH_S = 1.0


@dataclass(frozen=True)
class RateLimit:
    """A provider's (or one model's) limits per minute; ``None`` for no limit of that kind."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise SpecError(f"rate limit {name}={value!r} is invalid: expected a whole number >= 1")


@dataclass(frozen=True)
class Permit:
    """The log rows a call holds (one per limited key), granted at ``at``; settled with the tokens
    it really used."""

    ids: tuple[int, ...]
    at: float


def limit_keys(model: str) -> tuple[str, ...]:
    """The keys a model's calls count against: the model and its provider."""
    provider = model.partition(":")[0]
    return (model, provider) if provider and provider != model else (model,)


async def set_rate_limits(store: Any, limits: Mapping[str, RateLimit]) -> None:
    """Make ``limits`` the configured ones (keys not in it lose theirs; learned blocks stay)."""

    def work(tx: Any) -> None:
        tx.execute("UPDATE rate_limits SET requests_per_minute = NULL, tokens_per_minute = NULL")
        for key, limit in limits.items():
            tx.execute(
                "INSERT INTO rate_limits (key, requests_per_minute, tokens_per_minute) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET requests_per_minute = excluded.requests_per_minute, "
                "tokens_per_minute = excluded.tokens_per_minute",
                (key, limit.requests_per_minute, limit.tokens_per_minute),
            )

    await store.run(work)


class RateLimiter:
    """Permits for model calls against the store's rate limits (see the module docstring)."""

    def __init__(self, store: Any, clock: Clock, refresh_s: float = REFRESH_S) -> None:
        self.store = store
        self.clock = clock
        self.refresh_s = refresh_s
        self._limited: set[str] = set()
        self._read_at = -math.inf

    async def _limited_keys(self, model: str) -> list[str]:
        now = self.clock.time()
        if now - self._read_at >= self.refresh_s:
            rows = await self.store.fetchall(
                "SELECT key FROM rate_limits WHERE requests_per_minute IS NOT NULL "
                "OR tokens_per_minute IS NOT NULL OR blocked_until > ?",
                (now,),
            )
            self._limited, self._read_at = {str(r["key"]) for r in rows}, now
        return sorted(k for k in limit_keys(model) if k in self._limited)

    async def acquire(
        self, model: str, tokens: Callable[[], int], on_wait: Callable[[float], None] | None = None
    ) -> Permit | None:
        """Wait until a call of ``model`` estimated at ``tokens()`` fits every limit it falls under;
        None when none does. ``on_wait(seconds)`` is told before each wait (a watchdog extension)."""
        keys = await self._limited_keys(model)
        if not keys:
            return None
        estimate = tokens()
        while True:
            attempt = functools.partial(_try, keys, estimate, self.clock.time())
            outcome = await self.store.run(attempt)
            if isinstance(outcome, Permit):
                return outcome
            if on_wait is not None:
                on_wait(outcome)
            await self.clock.sleep(outcome)

    async def settle(self, permit: Permit | None, tokens: int) -> None:
        """The call used ``tokens``: that is what counts against the window from now on."""
        if permit is None or not permit.ids:
            return
        marks = ", ".join("?" * len(permit.ids))
        await self.store.execute(
            f"UPDATE rate_limit_log SET tokens = ? WHERE id IN ({marks})", (tokens, *permit.ids)
        )

    async def learn(self, model: str, retry_after_s: float) -> None:
        """A 429 said to wait ``retry_after_s``: every caller of ``model`` on this store waits too."""
        until = self.clock.time() + max(0.0, retry_after_s)
        await self.store.execute(
            "INSERT INTO rate_limits (key, blocked_until) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
            "blocked_until = CASE WHEN excluded.blocked_until > rate_limits.blocked_until "
            "THEN excluded.blocked_until ELSE rate_limits.blocked_until END",
            (model, until),
        )
        self._limited.add(model)

    async def heed(self, model: str, hint: RateHint | None) -> None:
        """A successful answer's headers said an allowance is used up: learned as a ``Retry-After``
        of its reset. Nothing is written (no store round trip) while there is room."""
        wait = hint.blocked_for_s if hint is not None else None
        if wait is not None:
            await self.learn(model, wait)


def _try(keys: list[str], tokens: int, now: float, tx: Any) -> Permit | float:
    """One transaction: a permit on every key, or how long to wait before asking again."""
    lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
    since = now - WINDOW_S
    wait = 0.0
    for key in keys:  # in a fixed order: two callers lock the same rows the same way
        row = tx.fetchone(
            "SELECT requests_per_minute, tokens_per_minute, blocked_until FROM rate_limits "
            f"WHERE key = ?{lock}",
            (key,),
        )
        if row is None:
            continue
        if float(row["blocked_until"]) > now:
            wait = max(wait, float(row["blocked_until"]) - now)
            continue
        # rows age out a window late: a caller whose clock reading is older still counts them
        tx.execute("DELETE FROM rate_limit_log WHERE key = ? AND at <= ?", (key, since - WINDOW_S))
        wait = max(wait, _wait_for_room(tx, key, since, tokens, row))
    if wait > 0:
        return wait
    ids = []
    for key in keys:
        inserted = tx.fetchone(
            "INSERT INTO rate_limit_log (key, at, tokens) VALUES (?, ?, ?) RETURNING id", (key, now, tokens)
        )
        ids.append(int(inserted["id"]))
    return Permit(tuple(ids), now)


def _wait_for_room(tx: Any, key: str, since: float, tokens: int, row: Any) -> float:
    """Seconds until the window of ``key`` has room for one more request of ``tokens`` (0: now)."""
    rpm, tpm = row["requests_per_minute"], row["tokens_per_minute"]
    log = tx.fetchall(
        "SELECT at, tokens FROM rate_limit_log WHERE key = ? AND at > ? ORDER BY at, id", (key, since)
    )
    wait = 0.0
    if rpm is not None and len(log) >= int(rpm):
        wait = float(log[len(log) - int(rpm)]["at"]) - since  # until enough of the oldest age out
    if tpm is not None and log:
        used = sum(int(r["tokens"]) for r in log)
        freed = 0
        for r in log:  # a request larger than the whole minute's allowance goes alone
            if used - freed + tokens <= int(tpm) or freed == used:
                break
            freed += int(r["tokens"])
            wait = max(wait, float(r["at"]) - since)
    return wait
