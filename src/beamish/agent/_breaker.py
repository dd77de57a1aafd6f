"""Circuit breakers per ``provider:model``, shared by every agent, process and node of one store.

A provider that is down answers every agent the same way; without a breaker each agent finds out on
its own, after its own retries, and keeps stampeding the sick provider. Here every failed attempt
(a 429, a 5xx or 529, a timeout) counts against the model's row in ``breakers``; after
``failures`` in a row the breaker **opens** and calls go straight to the agent's fallback model.
After ``cooldown_s`` it is **half-open**: one caller (whichever asks first, on any node) probes the
model while the others keep to the fallback; a success **closes** it, a failure opens it again for
another cool-down. A probe that never reports (its caller died) is handed to another caller after
``probe_timeout_s``. ``breaker.opened`` and ``breaker.closed`` are events. Each decision is one
store transaction (the row is locked ``FOR UPDATE`` on PostgreSQL), so two nodes never both probe.

A breaker seen closed and clean is trusted for :data:`CLEAN_TRUST_S` without reading the store
again (a healthy model's calls cost no round trip each), unless a failure of that model is seen
here first: another agent's failures open it here at most that much later. Open and half-open
breakers are always read, so the probe stays one caller's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from beamish._clock import Clock
from beamish._events import Event
from beamish._exceptions import SpecError
from beamish.journal._eventlog import insert_event

#: How long a breaker seen closed with no failures is taken as still so without reading the store.
CLEAN_TRUST_S = 1.0

Admission = Literal["closed", "probe", "open"]
State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerPolicy:
    """When a model's breaker opens (``failures`` failed attempts in a row), how long it stays
    open before one probe (``cooldown_s``), and how long a probe may take before another caller
    probes instead (``probe_timeout_s``). Defaults are defined here, once."""

    failures: int = 5
    cooldown_s: float = 30.0
    probe_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if isinstance(self.failures, bool) or not isinstance(self.failures, int) or self.failures < 1:
            raise SpecError(f"BreakerPolicy.failures must be a whole number >= 1, got {self.failures!r}")
        for key in ("cooldown_s", "probe_timeout_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise SpecError(f"BreakerPolicy.{key} must be a number of seconds, got {value!r}")
            if value <= 0:
                raise SpecError(f"BreakerPolicy.{key} must be above 0, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BreakerPolicy:
        unknown = set(data) - {"failures", "cooldown_s", "probe_timeout_s"}
        if unknown:
            raise SpecError(f"BreakerPolicy has unknown keys {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class BreakerState:
    """One model's breaker as stored (``beamish status`` shows the ones not closed)."""

    key: str
    state: State
    failures: int
    opened_at: float
    probe_until: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Breaker:
    """The store's breakers, seen by one agent (``owner`` names it in events)."""

    def __init__(
        self, store: Any, clock: Clock, policy: BreakerPolicy | None = None, owner: str = ""
    ) -> None:
        self.store = store
        self.clock = clock
        self.policy = policy or BreakerPolicy()
        self.owner = owner
        #: Keys this agent last saw with failures or not closed: a success must write there.
        self._dirty: set[str] = set()
        #: Keys last read closed and clean → until when (the clock's time) that is trusted.
        self._clean_until: dict[str, float] = {}
        #: Failures seen here so far (a read begun before one must not be trusted after it).
        self._failures_seen = 0

    async def admit(self, key: str) -> Admission:
        """Whether a call of ``key`` may go: ``closed`` (go), ``probe`` (go, as the one half-open
        probe: report its outcome), ``open`` (do not: use the fallback)."""
        now = self.clock.time()
        if now < self._clean_until.get(key, -math.inf):
            return "closed"
        seen = self._failures_seen
        row = await self.store.fetchone(
            "SELECT state, failures, opened_at, probe_until FROM breakers WHERE key = ?", (key,)
        )
        if row is None or (row["state"] == "closed" and int(row["failures"]) == 0):
            self._dirty.discard(key)
            if seen == self._failures_seen:
                self._clean_until[key] = now + CLEAN_TRUST_S
            return "closed"
        self._clean_until.pop(key, None)
        self._dirty.add(key)
        if row["state"] == "closed":
            return "closed"
        if not _probe_due(row, now, self.policy):
            return "open"
        taken: Admission = await self.store.run(functools.partial(_take_probe, key, now, self.policy))
        return taken

    async def failed(self, key: str, error: BaseException | str) -> bool:
        """One failed attempt of ``key``; True when the breaker is open after it."""
        self._dirty.add(key)
        self._failures_seen += 1
        self._clean_until.pop(key, None)
        work = functools.partial(_fail, key, self.clock.time(), self.policy, self.owner, str(error)[:300])
        opened: bool = await self.store.run(work)
        return opened

    async def succeeded(self, key: str) -> None:
        """``key`` answered: its failures are forgiven, and an open or half-open breaker closes."""
        if key not in self._dirty:
            return
        await self.store.run(functools.partial(_succeed, key, self.clock.time(), self.owner))
        self._dirty.discard(key)

    async def is_open(self, key: str) -> bool:
        """Whether ``key``'s breaker is open now (half-open counts: the probe is someone else's)."""
        row = await self.store.fetchone("SELECT state FROM breakers WHERE key = ?", (key,))
        return row is not None and row["state"] != "closed"


async def breaker_states(store: Any) -> list[BreakerState]:
    """Every breaker that is not closed and clean, by key (what ``beamish status`` lists)."""
    rows = await store.fetchall(
        "SELECT key, state, failures, opened_at, probe_until FROM breakers "
        "WHERE state <> 'closed' OR failures > 0 ORDER BY key"
    )
    return [
        BreakerState(
            str(r["key"]), r["state"], int(r["failures"]), float(r["opened_at"]), float(r["probe_until"])
        )
        for r in rows
    ]


def _probe_due(row: Any, now: float, policy: BreakerPolicy) -> bool:
    if row["state"] == "open":
        return now >= float(row["opened_at"]) + policy.cooldown_s
    return row["state"] == "half_open" and now >= float(row["probe_until"])


def _locked(tx: Any, key: str) -> Any:
    lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
    return tx.fetchone(
        f"SELECT state, failures, opened_at, probe_until FROM breakers WHERE key = ?{lock}", (key,)
    )


def _take_probe(key: str, now: float, policy: BreakerPolicy, tx: Any) -> Admission:
    row = _locked(tx, key)
    if row is None or row["state"] == "closed":
        return "closed"
    if not _probe_due(row, now, policy):
        return "open"  # another caller took the probe first
    tx.execute(
        "UPDATE breakers SET state = 'half_open', probe_until = ?, updated_at = ? WHERE key = ?",
        (now + policy.probe_timeout_s, now, key),
    )
    return "probe"


def _fail(key: str, now: float, policy: BreakerPolicy, owner: str, error: str, tx: Any) -> bool:
    row = _locked(tx, key)
    if row is None:
        tx.execute(
            "INSERT INTO breakers (key, state, failures, updated_at) VALUES (?, 'closed', 0, ?) "
            "ON CONFLICT (key) DO NOTHING",
            (key, now),
        )
        row = _locked(tx, key)
    failures = int(row["failures"]) + 1
    state = str(row["state"])
    opens = state == "half_open" or (state == "closed" and failures >= policy.failures)
    if opens:
        tx.execute(
            "UPDATE breakers SET state = 'open', failures = ?, opened_at = ?, updated_at = ? WHERE key = ?",
            (failures, now, now, key),
        )
        data = {
            "key": key,
            "failures": failures,
            "cooldown_s": policy.cooldown_s,
            "probe_failed": state == "half_open",
            "by": owner,
            "error": error,
        }
        insert_event(tx, Event("breaker.opened", key, data, at=now))
        return True
    tx.execute("UPDATE breakers SET failures = ?, updated_at = ? WHERE key = ?", (failures, now, key))
    return state != "closed"


def _succeed(key: str, now: float, owner: str, tx: Any) -> None:
    row = _locked(tx, key)
    if row is None or (row["state"] == "closed" and int(row["failures"]) == 0):
        return
    tx.execute(
        "UPDATE breakers SET state = 'closed', failures = 0, probe_until = 0, updated_at = ? WHERE key = ?",
        (now, key),
    )
    if row["state"] != "closed":
        data = {"key": key, "open_for_s": round(now - float(row["opened_at"]), 3), "by": owner}
        insert_event(tx, Event("breaker.closed", key, data, at=now))
