"""Steps: ``(run_id, seq)`` rows with kind and phase, fenced writes, message history from deltas."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from beamish._events import Event
from beamish._exceptions import SpecError, StoreError
from beamish.journal._base import StoreBase, check_epoch
from beamish.journal._eventlog import insert_event, insert_ledger
from beamish.journal._history import FULL, SEGMENT, load_history
from beamish.journal._payload import (
    Prepared,
    decode,
    envelope_ref,
    finite,
    load_bodies,
    prepare,
    request_hash,
    store_body,
)
from beamish.journal._records import EFFECTS, STEP_KINDS, STEP_PHASES, Step, step_key
from beamish.journal._sql import Row, SyncTx


def _steps_from_rows(tx: SyncTx, rows: list[Row]) -> list[Step]:
    refs = {
        ref
        for r in rows
        for ref in (envelope_ref(r.get("request")), envelope_ref(r["response"]), envelope_ref(r["delta"]))
        if ref is not None
    }
    bodies = load_bodies(tx, refs) if refs else {}
    return [
        Step(
            run_id=str(r["run_id"]),
            seq=int(r["seq"]),
            kind=str(r["kind"]),
            phase=str(r["phase"]),
            name=str(r["name"]),
            request_hash=str(r["request_hash"]),
            request=decode(r.get("request"), bodies),
            response=decode(r["response"], bodies),
            error=None if r["error"] is None else json.loads(r["error"]),
            messages=decode(r["delta"], bodies),
            effect=r["effect"],
            idempotency_key=r["idem_key"],
            tokens_in=int(r["tokens_in"]),
            tokens_out=int(r["tokens_out"]),
            cost_usd=float(r["cost_usd"]),
            epoch=int(r["epoch"]),
            started_at=float(r["started_at"]),
            finished_at=None if r["finished_at"] is None else float(r["finished_at"]),
        )
        for r in rows
    ]


_NO_REQUEST = (
    "run_id, seq, kind, phase, name, effect, idem_key, request_hash, response, error, delta, "
    "tokens_in, tokens_out, cost_usd, epoch, started_at, finished_at"
)


def load_steps(tx: SyncTx, run_id: str, after_seq: int = -1, *, requests: bool = True) -> list[Step]:
    """The run's steps after ``after_seq``, in order, payloads resolved (inside a transaction).

    ``requests=False`` leaves ``Step.request`` None: replay needs only the request hash, and reading
    and decoding the requests would be a third of its time.
    """
    cols = "*" if requests else _NO_REQUEST
    rows = tx.fetchall(
        f"SELECT {cols} FROM steps WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after_seq)
    )
    return _steps_from_rows(tx, rows)


_COLUMNS = (
    "run_id, seq, kind, phase, name, effect, idem_key, request_hash, request, response, error, delta, "
    "tokens_in, tokens_out, cost_usd, epoch, started_at, finished_at"
)
_INSERT = f"INSERT INTO steps ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ON_INTENT = " ON CONFLICT (run_id, seq) DO NOTHING"
_ON_FINISH = (
    " ON CONFLICT (run_id, seq) DO UPDATE SET phase = excluded.phase, response = excluded.response, "
    "error = excluded.error, delta = excluded.delta, tokens_in = excluded.tokens_in, "
    "tokens_out = excluded.tokens_out, cost_usd = excluded.cost_usd, epoch = excluded.epoch, "
    "finished_at = excluded.finished_at WHERE steps.phase IN ('intent', 'unknown') "
    "AND steps.request_hash = excluded.request_hash"
)
# The fence (a share lock on the run row at the stated epoch), the step and its ledger entry in one
# statement: atomic on its own, so PostgreSQL needs no BEGIN/COMMIT round trips.
_PG_FAST_STEP = (
    "WITH fence AS (SELECT agent FROM runs WHERE run_id = ? AND epoch = ? FOR SHARE), "
    f"ins AS (INSERT INTO steps ({_COLUMNS}) SELECT ?, ?::bigint, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
    "?::bigint, ?::bigint, ?::double precision, ?::bigint, ?::double precision, ?::double precision "
    "FROM fence ON CONFLICT (run_id, seq) DO "
)
_PG_FAST_TAIL = " RETURNING 1)"
_CONFLICT = {"intent": "NOTHING", "finish": _ON_FINISH.split(" DO ", 1)[1]}
_PG_FAST_SELECT = " SELECT (SELECT COUNT(*) FROM ins) AS n, (SELECT COUNT(*) FROM fence) AS fence_ok"
_PG_LEDGER = (
    ", led AS (INSERT INTO ledger (at, agent, run_id, seq, kind, amount_usd, tokens_in, tokens_out, "
    "model) SELECT ?::double precision, fence.agent, ?, ?::bigint, 'spend', ?::double precision, "
    "?::bigint, ?::bigint, ? FROM fence, ins)"
)
#: (phase is intent, with a ledger entry) → the one-statement append.
_PG_FAST = {
    (intent, ledger): _PG_FAST_STEP + _CONFLICT["intent" if intent else "finish"] + _PG_FAST_TAIL
    + (_PG_LEDGER if ledger else "") + _PG_FAST_SELECT
    for intent in (True, False)
    for ledger in (True, False)
}  # fmt: skip


#: The columns a write sets on a step row (a finish leaves its intent's request and start as they were).
_SET_BY = {
    "intent": ("phase", "request_hash", "request", "epoch", "started_at"),
    "finish": ("phase", "request_hash", "response", "error", "delta", "tokens_in", "tokens_out",
               "cost_usd", "epoch", "finished_at"),
}  # fmt: skip
_POSITION = {name.strip(): i for i, name in enumerate(_COLUMNS.split(","))}


def _written_before(tx: SyncTx, values: tuple[Any, ...], intent: bool) -> bool:
    """True when the step row already holds exactly what this write sets: the same write, retried
    after its commit's acknowledgement was lost (the connection died between COMMIT and its answer).
    It was committed once, ledger entry included, so it counts as done instead of a conflict."""
    cols = _SET_BY["intent" if intent else "finish"]
    row = tx.fetchone(
        f"SELECT {', '.join(cols)} FROM steps WHERE run_id = ? AND seq = ?", (values[0], values[1])
    )
    return row is not None and all(row[c] == values[_POSITION[c]] for c in cols)


def _already(run_id: str, seq: int) -> StoreError:
    return StoreError(
        f"run {run_id!r} step {seq}: already recorded (or recorded for another request); supersede it first"
    )


class StepsMixin(StoreBase):
    """Journal writes for steps; each states the writer's epoch and is refused (Fenced) if stale."""

    async def record_step(
        self,
        run_id: str,
        seq: int,
        epoch: int,
        *,
        kind: str,
        phase: str,
        request: Any,
        request_hash: str | None = None,
        name: str = "",
        effect: str | None = None,
        response: Any = None,
        error: Any = None,
        messages: list[Any] | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: float = 0.0,
        model: str | None = None,
        snapshot: list[Any] | None = None,
        events: list[Event] | None = None,
        idempotency_key: str | None = None,
        snapshot_prev: int | None = None,
    ) -> None:
        """Write step ``seq`` of a run in one transaction (after the epoch check).

        ``intent`` inserts the row (idempotency key ``run_id:seq`` unless given); ``done``, ``error``
        and ``unknown`` complete an open intent or insert a one-phase step. A ``done`` step's cost is
        added to the ledger in the same transaction, so spend is counted exactly once. ``snapshot``
        (the whole message list after this step) bounds how far back history rebuilding must read;
        with ``snapshot_prev`` it is only the messages added since the snapshot at that step (-1:
        since the start), so snapshots store each message once.
        """
        _check_step(kind, phase, effect, seq, snapshot_prev)
        cost = finite(cost_usd, "cost_usd")
        now = self.clock.time()
        threshold = self.payload_threshold
        error_json = None if error is None else json.dumps(error, sort_keys=True, default=str)
        req = prepare(request, threshold, "step request")
        resp = None if response is None else prepare(response, threshold, "step response")
        delta = None if messages is None else prepare(messages, threshold, "messages")
        snap = None if snapshot is None else prepare(snapshot, threshold, "snapshot")
        key = (idempotency_key or step_key(run_id, seq)) if effect is not None else None
        values = (
            run_id, seq, kind, phase, name, effect, key, request_hash or _hash(request), req.envelope,
            None if resp is None else resp.envelope, error_json, None if delta is None else delta.envelope,
            tokens_in, tokens_out, cost, epoch, now, None if phase == "intent" else now,
        )  # fmt: skip
        write = _StepWrite(
            run_id, seq, epoch, phase == "intent", values, now,
            large=tuple(p for p in (req, resp, delta, snap) if p is not None and p.body is not None),
            ledger=(cost, tokens_in, tokens_out, model) if phase == "done" and cost > 0 else None,
            snap=snap, snapshot_prev=snapshot_prev, events=tuple(events or ()),
        )  # fmt: skip
        if self.dialect == "postgresql" and not write.large and snap is None and not write.events:
            await self._backend.run_single(write.fast)
        else:
            await self.run(write.work)

    async def steps(self, run_id: str, *, since_seq: int = -1) -> list[Step]:
        """The run's steps after ``since_seq``, in order, payloads resolved."""

        return await self.read(lambda tx: load_steps(tx, run_id, since_seq))

    async def step(self, run_id: str, seq: int) -> Step | None:
        """One step, or None."""

        def work(tx: SyncTx) -> list[Step]:
            rows = tx.fetchall("SELECT * FROM steps WHERE run_id = ? AND seq = ?", (run_id, seq))
            return _steps_from_rows(tx, rows)

        found = await self.read(work)
        return found[0] if found else None

    async def messages(self, run_id: str) -> tuple[list[Any], int]:
        """The run's message history, rebuilt: latest snapshot, then the deltas of later steps.

        Returns ``(messages, last_seq)`` (``last_seq`` is -1 for a run without finished steps).
        """

        def work(tx: SyncTx) -> tuple[list[Any], int]:
            messages, last = load_history(tx, run_id)
            rows = tx.fetchall(
                "SELECT seq, delta FROM steps WHERE run_id = ? AND seq > ? AND phase IN ('done', 'error') "
                "ORDER BY seq",
                (run_id, last),
            )
            refs = {ref for r in rows if (ref := envelope_ref(r["delta"])) is not None}
            bodies = load_bodies(tx, refs) if refs else {}
            for r in rows:
                delta = decode(r["delta"], bodies)
                if delta:
                    messages.extend(delta)
                last = int(r["seq"])
            return messages, last

        return await self.read(work)

    async def supersede(self, run_id: str, from_seq: int, epoch: int, *, event: Event | None = None) -> int:
        """Discard steps ``≥ from_seq`` (after a divergence); their spend stays counted on the run.

        The run's generation grows by one, so effects performed again get fresh idempotency keys.

        Returns how many steps were discarded. ``event`` is stored in the same transaction.
        """

        def work(tx: SyncTx) -> int:
            check_epoch(tx, run_id, epoch)
            row = tx.fetchone(
                "SELECT COALESCE(SUM(cost_usd), 0) AS spent FROM steps WHERE run_id = ? AND seq >= ? "
                "AND phase = 'done'",
                (run_id, from_seq),
            )
            spent = float(row["spent"]) if row else 0.0
            tx.execute(
                "UPDATE runs SET superseded_spend = superseded_spend + ?, generation = generation + 1 "
                "WHERE run_id = ?",
                (spent, run_id),
            )
            n = tx.execute("DELETE FROM steps WHERE run_id = ? AND seq >= ?", (run_id, from_seq))
            tx.execute("DELETE FROM snapshots WHERE run_id = ? AND seq >= ?", (run_id, from_seq))
            if event is not None:
                insert_event(tx, event)
            return n

        return await self.run(work)


def _hash(request: Any) -> str:
    """``record_step``'s parameter of that name shadows :func:`request_hash`."""
    return request_hash(request)


def _check_step(kind: str, phase: str, effect: str | None, seq: int, snapshot_prev: int | None) -> None:
    if kind not in STEP_KINDS:
        raise SpecError(f"step kind {kind!r} is not one of {sorted(STEP_KINDS)}")
    if phase not in STEP_PHASES:
        raise SpecError(f"step phase {phase!r} is not one of {sorted(STEP_PHASES)}")
    if effect is not None and effect not in EFFECTS:
        raise SpecError(f"effect {effect!r} is not one of {sorted(EFFECTS)}")
    if seq < 0:
        raise SpecError(f"step seq must be ≥ 0, got {seq}")
    if snapshot_prev is not None and not -1 <= snapshot_prev < seq:
        raise SpecError(f"snapshot_prev must be -1 or an earlier step than {seq}, got {snapshot_prev}")


@dataclass(frozen=True)
class _StepWrite:
    """One step, prepared outside any transaction (payloads encoded, secrets masked), so the
    transaction itself only writes: :meth:`work` on any backend, :meth:`fast` in one PostgreSQL round
    trip when there is nothing but the step and its ledger entry."""

    run_id: str
    seq: int
    epoch: int
    intent: bool
    values: tuple[Any, ...]
    now: float
    large: tuple[Prepared, ...]
    ledger: tuple[float, int, int, str | None] | None  # cost, tokens in/out, model: a paid done step
    snap: Prepared | None
    snapshot_prev: int | None
    events: tuple[Event, ...]

    def work(self, tx: SyncTx) -> None:
        run_id, seq, now = self.run_id, self.seq, self.now
        agent = check_epoch(tx, run_id, self.epoch)
        for p in self.large:
            store_body(tx, run_id, p, now)
        if tx.execute(_INSERT + (_ON_INTENT if self.intent else _ON_FINISH), self.values) != 1:
            if _written_before(tx, self.values, self.intent):
                return
            raise _already(run_id, seq)
        if self.ledger is not None:
            cost, tokens_in, tokens_out, model = self.ledger
            insert_ledger(tx, at=now, agent=agent, amount_usd=cost, run_id=run_id, seq=seq,
                          tokens_in=tokens_in, tokens_out=tokens_out, model=model)  # fmt: skip
        if self.snap is not None:
            tx.execute(
                "INSERT INTO snapshots (run_id, seq, messages, created_at, format, prev_seq) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, seq) DO UPDATE SET "
                "messages = excluded.messages, format = excluded.format, prev_seq = excluded.prev_seq",
                (run_id, seq, self.snap.envelope, now, FULL if self.snapshot_prev is None else SEGMENT,
                 self.snapshot_prev),
            )  # fmt: skip
        for event in self.events:
            insert_event(tx, event)

    def fast(self, tx: SyncTx) -> None:
        sql = _PG_FAST[(self.intent, self.ledger is not None)]
        extra = (self.now, self.run_id, self.seq, *self.ledger) if self.ledger is not None else ()
        row = tx.fetchone(sql, (self.run_id, self.epoch, *self.values, *extra))
        if row is not None and row["n"] == 1:
            return
        if row is None or not row["fence_ok"]:
            check_epoch(tx, self.run_id, self.epoch)  # raises RunNotFound or Fenced
        if _written_before(tx, self.values, self.intent):
            return
        raise _already(self.run_id, self.seq)
