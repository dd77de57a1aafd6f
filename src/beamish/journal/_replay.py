"""The run journal the agent loop calls: replay what is recorded, perform and record what is not.

``RunJournal.open(store, run_id, epoch)`` loads the run's steps once (replay then costs no query per
step). For step ``seq``:

- :meth:`RunJournal.model_step` — one phase. A recorded ``done`` step with the same request hash is
  returned without calling the model (``replayed_calls``); otherwise ``perform()`` runs and its result
  is recorded (``model_calls``).
- :meth:`RunJournal.effect_step` — two phases for tools with side effects: ``intent`` (idempotency
  key ``run_id:seq``, ``run_id:seq:g`` after ``g`` divergences) is committed before ``perform(key)``,
  ``done`` after. An ``intent`` left by a crash is resolved by the tool's effect class: ``read``
  re-runs, ``idempotent`` re-runs with the same key, ``once`` asks ``reconcile(key)`` (``None``: it
  did not happen, so run it) and otherwise parks the run as ``needs_attention``
  (:class:`~beamish.errors.UnknownOutcome`). The key is the one recorded on the step: ``perform``,
  ``reconcile`` and the step row always carry the same string.

On a cluster the journal carries the lease its agent is held by, and an effect is performed only
while that lease surely holds (:meth:`RunJournal.hold_lease`): its time left is read on the store's
clock after the intent is written, and the effect starts before :data:`LEASE_MARGIN` of it has passed
on this machine. A node whose intent's reply was held by a partition past the lease leaves the effect
to the lease's next holder (Fenced), whose reconcile settles it: fencing holds for the effect itself,
not only for the journal's rows.

A request whose hash differs from the recorded one at step N is a *divergence*: a ``step.divergence``
event names the run, the step and what differs (both requests summarised), then the recorded steps
from N on are **discarded** (their spend stays on the run) and the run continues live from N. Replayed
steps are counted, and one ``step.replayed`` event (count and range) is stored with the first live
write, so a 1,000-step replay costs no writes.

The message history is kept as each step's delta (``StepResult.messages``); every ``snapshot_every``
steps the messages added since the previous snapshot are stored as one segment, so
:meth:`RunJournal.open` with ``replay=False`` rebuilds it from the snapshots plus a bounded number of
deltas, and snapshots store each message once (linear in the run, see :mod:`._history`).

Model requests are hashed with version 2 (:mod:`._reqhash`): each list in the request is a chain, so
a step hashes only the messages new since the previous request. Rows hashed with version 1 replay as
before.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from beamish._events import Event
from beamish._exceptions import Fenced, SpecError, ToolError, UnknownOutcome
from beamish.journal._divergence import clip, differences, summarize
from beamish.journal._history import load_history
from beamish.journal._payload import request_hash
from beamish.journal._records import EFFECTS, Lease, Step, step_key
from beamish.journal._reqhash import Hashed, RequestHasher, hash_version, list_differences
from beamish.journal._sql import SyncTx
from beamish.journal._steps import load_steps

if TYPE_CHECKING:
    from beamish.journal._store import Store


@dataclass(frozen=True)
class StepResult:
    """What a step produced: a JSON-safe ``value``, the ``messages`` it adds to the conversation,
    usage and cost; ``replayed`` is True when it came from the journal instead of being performed."""

    value: Any = None
    messages: list[Any] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    model: str | None = None
    replayed: bool = False


Perform = Callable[[], Awaitable[Any]]
PerformEffect = Callable[[str], Awaitable[Any]]
Reconcile = Callable[[str], Any]


#: The share of a lease's time left (read on the store's clock) within which an effect may start on
#: this machine; the rest covers a difference in clock rates between this machine and the store.
LEASE_MARGIN = 0.8


def _as_result(value: Any) -> StepResult:
    return value if isinstance(value, StepResult) else StepResult(value=value)


class RunJournal:
    """Journal (and replay) one run's steps as the writer holding fencing ``epoch``."""

    def __init__(self, store: Store, run_id: str, epoch: int, *, snapshot_every: int = 25) -> None:
        if snapshot_every < 1:
            raise SpecError(f"snapshot_every must be ≥ 1, got {snapshot_every}")
        self.store = store
        self.run_id = run_id
        self.epoch = epoch
        self.snapshot_every = snapshot_every
        #: ``llm`` steps performed live / served from the journal, for RunResult.
        self.model_calls = 0
        self.replayed_calls = 0
        #: Every divergence seen: ``{"seq", "differs", "recorded", "live"}``.
        self.divergences: list[dict[str, Any]] = []
        self._recorded: dict[int, Step] = {}
        self._base_seq = -1
        self._base_messages: list[Any] = []
        self.messages: list[Any] = []
        self._replayed: list[int] = []
        self._hasher = RequestHasher()
        #: Snapshot step → how many messages the history holds through it (for the next segment).
        self._snaps: dict[int, int] = {}
        #: Divergences so far (stored on the run): part of new idempotency keys once above 0.
        self.generation = 0
        #: On a cluster, the lease the run's agent is held by: effects happen only while it holds.
        self.lease: Lease | None = None
        #: After :meth:`hold_lease`: the monotonic time (the loop's clock) before which the effect
        #: must start; the tool checks it again when its own code starts.
        self.act_before: float | None = None

    @classmethod
    async def open(
        cls, store: Store, run_id: str, epoch: int, *, snapshot_every: int = 25, replay: bool = True
    ) -> RunJournal:
        """Load the run's journal. ``replay=True``: every step, for a loop that re-executes from step
        0; ``replay=False``: the latest snapshot and the steps after it, for a loop that continues
        from :attr:`next_seq` with :attr:`messages`."""
        journal = cls(store, run_id, epoch, snapshot_every=snapshot_every)
        journal._install(await store.read(functools.partial(_load, run_id, replay)))
        return journal

    @classmethod
    async def claim(
        cls,
        store: Store,
        run_id: str,
        owner: str,
        *,
        lease: Lease | None = None,
        status: str | None = None,
        meta: dict[str, Any] | None = None,
        events: Callable[[int], Sequence[Event]] | None = None,
        snapshot_every: int = 25,
    ) -> RunJournal:
        """Claim the run (``Store.claim_run``) and load its journal for a replay from step 0, in one
        transaction; the journal's :attr:`epoch` is the new one."""
        epoch, loaded = await store.claim_run_and(
            run_id,
            owner,
            lambda tx, _epoch: _load(run_id, True, tx),
            lease=lease,
            status=status,
            meta=meta,
            events=events,
        )
        assert loaded is not None
        journal = cls(store, run_id, epoch, snapshot_every=snapshot_every)
        journal._install(loaded)
        return journal

    def _install(self, loaded: _Loaded) -> None:
        self.generation, self._base_seq, self._base_messages, snaps, steps = loaded
        self._recorded = {s.seq: s for s in steps}
        self._rebuild_messages(upto=None)
        if self._base_seq >= 0:
            self._snaps[self._base_seq] = len(self._base_messages)
        if snaps:
            self._count_snapshots(set(snaps))

    def _count_snapshots(self, seqs: set[int]) -> None:
        """How many messages the history holds through each snapshot in ``seqs`` (from the deltas)."""
        count = len(self._base_messages)
        for seq in sorted(self._recorded):
            step = self._recorded[seq]
            if step.phase in ("done", "error") and step.messages:
                count += len(step.messages)
            if seq in seqs:
                self._snaps[seq] = count

    def key(self, seq: int) -> str:
        """The idempotency key a new effect at ``seq`` gets: ``run_id:seq``, or ``run_id:seq:g`` after
        ``g`` divergences (the discarded timeline may have used ``run_id:seq`` for another request)."""
        return step_key(self.run_id, seq, self.generation)

    @property
    def next_seq(self) -> int:
        """The first step number with no finished record (where a resuming loop continues)."""
        done = [s for s, st in self._recorded.items() if st.phase in ("done", "error")]
        return max(done, default=self._base_seq) + 1

    def recorded(self, seq: int) -> Step | None:
        """The recorded step ``seq`` as loaded for replay (``request`` not loaded: None), if any."""
        return self._recorded.get(seq)

    def _rebuild_messages(self, upto: int | None) -> None:
        messages = list(self._base_messages)
        for seq in sorted(self._recorded):
            step = self._recorded[seq]
            if upto is not None and seq >= upto:
                break
            if step.phase in ("done", "error") and step.messages:
                messages.extend(step.messages)
        self.messages = messages

    async def model_step(
        self, seq: int, request: Any, perform: Perform, *, kind: str = "llm", name: str = ""
    ) -> StepResult:
        """Step ``seq``: the recorded response for this request, or ``await perform()`` recorded."""
        recorded = self._recorded.get(seq)
        hashed: Hashed | None = None
        if recorded is not None and hash_version(recorded.request_hash) == 1:
            rhash = request_hash(request)  # a row from before version 2: hashed as it was
        else:
            hashed = self._hasher.hash(request)
            rhash = hashed.hash
        step = await self._check(seq, rhash, request, hashed)
        if step is not None and step.phase == "done":
            if hashed is not None:
                self._hasher.stored(hashed)
            return self._replay(step)
        result = _as_result(await perform())
        summary = summarize(request) if hashed is None else hashed.summary()
        if kind == "llm" and result.model:
            name = result.model  # the model that answered (an agent's fallback, maybe)
        await self._finish(seq, kind, name, None, summary, rhash, "done", result)
        if hashed is not None:
            self._hasher.stored(hashed)
        if kind == "llm":
            self.model_calls += 1
        return result

    async def effect_step(
        self,
        seq: int,
        name: str,
        args: Any,
        effect: str,
        perform: PerformEffect,
        reconcile: Reconcile | None = None,
        *,
        kind: str = "tool",
    ) -> StepResult:
        """Step ``seq``, a tool call with a side effect: intent → ``perform(key)`` → done.

        A ``read`` has nothing to lose, so it skips the intent (one write, re-run after a crash).

        ``perform`` and ``reconcile`` may return a :class:`StepResult` or a plain JSON-safe value;
        ``reconcile(key)`` returns the outcome if the effect happened, ``None`` if it did not, and
        raises when it cannot tell. An exception from ``perform`` is recorded as an ``error`` step
        (replayed as :class:`~beamish.ToolError`) and re-raised.
        """
        if effect not in EFFECTS:
            raise SpecError(f"effect {effect!r} is not one of {sorted(EFFECTS)}")
        request = {"name": name, "args": args}
        rhash = request_hash(request)
        step = await self._check(seq, rhash, request)
        key = step.idempotency_key if step is not None and step.idempotency_key else self.key(seq)
        if step is not None and step.phase == "done":
            return self._replay(step)
        if step is not None and step.phase == "error":
            self._replay(step)
            err = step.error or {}
            raise ToolError(f"{err.get('type', 'Error')}: {err.get('message', '')} (replayed)")
        if step is None and effect != "read":  # a read has no effect to lose: re-run it after a crash
            await self._write(seq, kind, name, effect, request, rhash, "intent", StepResult(), key=key)
        elif effect == "once":
            outcome = await self._reconcile(seq, kind, name, request, rhash, key, reconcile)
            if outcome is not None:
                await self._finish(seq, kind, name, effect, request, rhash, "done", outcome, key=key)
                return outcome
        if effect != "read":
            await self.hold_lease(seq, name)
        try:
            result = _as_result(await perform(key))
        except Fenced:
            raise  # not performed: the lease's next holder settles the step, nothing is recorded
        except Exception as exc:
            error = {"type": type(exc).__name__, "message": str(exc)}
            await self._finish(seq, kind, name, effect, request, rhash, "error", StepResult(), error, key=key)
            raise
        await self._finish(seq, kind, name, effect, request, rhash, "done", result, key=key)
        return result

    async def hold_lease(self, seq: int, name: str) -> None:
        """Return only if this node's lease on the agent holds for a while yet (see the module);
        Fenced otherwise, before the effect of step ``seq`` (tool ``name``) is performed."""
        if self.lease is None:
            return
        clock = asyncio.get_running_loop()
        while True:  # a slow answer proves nothing either way: ask again while the lease is ours
            asked = clock.time()
            left = await self.store.lease_left(self.lease)
            if left is None or clock.time() - asked < left * LEASE_MARGIN:
                break
        self.act_before = None if left is None else asked + left * LEASE_MARGIN
        if left is None:
            raise Fenced(
                f"run {self.run_id!r} step {seq}: lease {self.lease.name!r} (epoch {self.lease.epoch}) "
                f"is no longer held here, so tool {name!r} does not act; the lease's next holder settles it"
            )

    async def _reconcile(
        self, seq: int, kind: str, name: str, request: Any, rhash: str, key: str, reconcile: Reconcile | None
    ) -> StepResult | None:
        """A ``once`` effect whose outcome is unknown: settle it, or park the run."""
        why = "the tool has no reconcile()"
        if reconcile is not None:
            try:
                outcome = reconcile(key)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
            except Exception as exc:
                why = f"reconcile({key!r}) could not tell: {type(exc).__name__}: {exc}"
            else:
                return None if outcome is None else _as_result(outcome)
        event = Event(
            "run.needs_attention", self.run_id, {"run_id": self.run_id, "seq": seq, "tool": name, "why": why}
        )
        await self.store.record_step(
            self.run_id,
            seq,
            self.epoch,
            kind=kind,
            phase="unknown",
            request=request,
            request_hash=rhash,
            name=name,
            effect="once",
            events=[event],
            idempotency_key=key,
        )
        await self.store.update_run(self.run_id, status="needs_attention", epoch=self.epoch)
        raise UnknownOutcome(
            f"run {self.run_id!r} step {seq}: tool {name!r} (effect once) may or may not have run "
            f"(key {key!r}); {why}. The run is parked as needs_attention"
        )

    async def _check(self, seq: int, rhash: str, request: Any, hashed: Hashed | None = None) -> Step | None:
        """The recorded step for ``seq`` if it matches this request; a divergence discards it."""
        if seq < 0:
            raise SpecError(f"step seq must be ≥ 0, got {seq}")
        if seq <= self._base_seq:
            raise SpecError(
                f"run {self.run_id!r}: step {seq} is before the snapshot this journal resumed from "
                f"({self._base_seq}); open it with replay=True to re-execute from the start"
            )
        step = self._recorded.get(seq)
        if step is None or step.request_hash == rhash:
            return step
        full = await self.store.step(self.run_id, seq)  # the request was not loaded for replay
        stored = None if full is None else full.request
        if hashed is not None and isinstance(stored, dict) and hash_version(step.request_hash) == 2:
            live: Any = hashed.summary()
            recorded: Any = stored
            earlier = [s.request for s in reversed(await self.store.steps(self.run_id)) if s.seq < seq]
            differs = list_differences(stored, live, earlier, self._hasher)
        else:
            live = summarize(request)
            # model steps store the summary already; tool steps store the full request
            recorded = stored if step.effect is None else summarize(stored)
            differs = differences(recorded, live)
        info = {
            "run_id": self.run_id,
            "seq": seq,
            "differs": differs,
            "recorded": clip(recorded, 600),
            "live": clip(live, 600),
            "discarded_from": seq,
        }
        self.divergences.append(info)
        event = Event("step.divergence", self.run_id, info)
        await self.store.supersede(self.run_id, seq, self.epoch, event=event)
        self.generation += 1
        for later in [s for s in self._recorded if s >= seq]:
            del self._recorded[later]
        self._snaps = {s: n for s, n in self._snaps.items() if s < seq}
        self._rebuild_messages(upto=seq)
        return None

    def _replay(self, step: Step) -> StepResult:
        self._replayed.append(step.seq)
        if step.kind == "llm":
            self.replayed_calls += 1
        return StepResult(
            value=step.response,
            messages=list(step.messages or []),
            tokens_in=step.tokens_in,
            tokens_out=step.tokens_out,
            cost_usd=step.cost_usd,
            replayed=True,
        )

    def _pending_events(self) -> list[Event]:
        if not self._replayed:
            return []
        seqs, self._replayed = self._replayed, []
        return [
            Event(
                "step.replayed",
                self.run_id,
                {"run_id": self.run_id, "count": len(seqs), "from_seq": min(seqs), "to_seq": max(seqs)},
            )
        ]

    async def flush(self) -> None:
        """Store the pending ``step.replayed`` summary now (a run that ended while still replaying)."""
        events = self._pending_events()
        if events:
            await self.store.append_event(events[0])

    async def _finish(
        self,
        seq: int,
        kind: str,
        name: str,
        effect: str | None,
        request: Any,
        rhash: str,
        phase: str,
        result: StepResult,
        error: Any = None,
        *,
        key: str | None = None,
    ) -> None:
        snapshot = prev = None
        messages = self.messages + list(result.messages)
        if (seq + 1) % self.snapshot_every == 0:
            prev = max((s for s in self._snaps if s < seq), default=-1)
            snapshot = messages[self._snaps.get(prev, 0) :]  # only what the last snapshot lacks
        await self._write(
            seq, kind, name, effect, request, rhash, phase, result, error, snapshot, prev, key=key
        )
        if snapshot is not None:
            self._snaps[seq] = len(messages)
        self.messages = messages

    async def _write(
        self,
        seq: int,
        kind: str,
        name: str,
        effect: str | None,
        request: Any,
        rhash: str,
        phase: str,
        result: StepResult,
        error: Any = None,
        snapshot: list[Any] | None = None,
        snapshot_prev: int | None = None,
        *,
        key: str | None = None,
    ) -> None:
        """``key``: the effect's idempotency key, the very string its ``perform`` was handed."""
        await self.store.record_step(
            self.run_id,
            seq,
            self.epoch,
            kind=kind,
            phase=phase,
            request=request,
            request_hash=rhash,
            name=name,
            effect=effect,
            response=result.value if phase == "done" else None,
            error=error,
            messages=list(result.messages) if phase != "intent" else None,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            cost_usd=result.cost_usd if phase == "done" else 0.0,
            model=result.model,
            snapshot=snapshot,
            snapshot_prev=snapshot_prev,
            events=self._pending_events(),
            idempotency_key=None if effect is None else key or self.key(seq),
        )


_Loaded = tuple[int, int, list[Any], list[int], list[Step]]


def _load(run_id: str, replay: bool, tx: SyncTx) -> _Loaded:
    """A run's journal as stored: its generation, the snapshot it continues from (``replay=False``)
    or every snapshot's step (``replay=True``), and its steps."""
    row = tx.fetchone("SELECT generation FROM runs WHERE run_id = ?", (run_id,))
    generation = 0 if row is None else int(row["generation"])
    base_seq, snaps = -1, []
    base_messages: list[Any] = []
    if replay:
        rows = tx.fetchall("SELECT seq FROM snapshots WHERE run_id = ?", (run_id,))
        snaps = [int(r["seq"]) for r in rows]
    else:
        base_messages, base_seq = load_history(tx, run_id)
    steps = load_steps(tx, run_id, base_seq, requests=False)
    return generation, base_seq, base_messages, snaps, steps
