"""Steps: ``(run_id, seq)`` rows with kind and phase, fenced writes, message history from deltas."""

from __future__ import annotations

import json
from typing import Any

from beamish._events import Event
from beamish._exceptions import SpecError, StoreError
from beamish.journal._base import StoreBase, check_epoch
from beamish.journal._eventlog import insert_event, insert_ledger
from beamish.journal._payload import decode, encode, envelope_ref, finite, load_bodies, request_hash
from beamish.journal._records import EFFECTS, STEP_KINDS, STEP_PHASES, Step
from beamish.journal._sql import Row, SyncTx

_FINAL = ("done", "error")


def _steps_from_rows(tx: SyncTx, rows: list[Row]) -> list[Step]:
    refs = {
        ref
        for r in rows
        for ref in (envelope_ref(r["request"]), envelope_ref(r["response"]), envelope_ref(r["delta"]))
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
            request=decode(r["request"], bodies),
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


def load_steps(tx: SyncTx, run_id: str, after_seq: int = -1) -> list[Step]:
    """The run's steps after ``after_seq``, in order, payloads resolved (inside a transaction)."""
    rows = tx.fetchall("SELECT * FROM steps WHERE run_id = ? AND seq > ? ORDER BY seq", (run_id, after_seq))
    return _steps_from_rows(tx, rows)


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
    ) -> None:
        """Write step ``seq`` of a run in one transaction (after the epoch check).

        ``intent`` inserts the row (idempotency key ``run_id:seq``); ``done``/``error``/``unknown``
        complete an open intent or insert a one-phase step. A ``done`` step's cost is added to the
        ledger in the same transaction, so spend is counted exactly once. ``snapshot`` (the whole
        message list after this step) bounds how far back history rebuilding must read.
        """
        if kind not in STEP_KINDS:
            raise SpecError(f"step kind {kind!r} is not one of {sorted(STEP_KINDS)}")
        if phase not in STEP_PHASES:
            raise SpecError(f"step phase {phase!r} is not one of {sorted(STEP_PHASES)}")
        if effect is not None and effect not in EFFECTS:
            raise SpecError(f"effect {effect!r} is not one of {sorted(EFFECTS)}")
        if seq < 0:
            raise SpecError(f"step seq must be ≥ 0, got {seq}")
        cost = finite(cost_usd, "cost_usd")
        rhash = request_hash or _hash(request)
        now = self.clock.time()
        threshold = self.payload_threshold
        error_json = None if error is None else json.dumps(error, sort_keys=True, default=str)

        def work(tx: SyncTx) -> None:
            agent = check_epoch(tx, run_id, epoch)
            req = encode(tx, run_id, request, threshold, now, "step request")
            resp = None if response is None else encode(tx, run_id, response, threshold, now, "step response")
            delta = None if messages is None else encode(tx, run_id, messages, threshold, now, "messages")
            key = f"{run_id}:{seq}" if effect is not None else None
            finished = None if phase == "intent" else now
            values = (
                run_id,
                seq,
                kind,
                phase,
                name,
                effect,
                key,
                rhash,
                req,
                resp,
                error_json,
                delta,
                tokens_in,
                tokens_out,
                cost,
                epoch,
                now,
                finished,
            )
            sql = (
                "INSERT INTO steps (run_id, seq, kind, phase, name, effect, idem_key, request_hash, request, "
                "response, error, delta, tokens_in, tokens_out, cost_usd, epoch, started_at, finished_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            )
            if phase == "intent":
                sql += " ON CONFLICT (run_id, seq) DO NOTHING"
            else:
                sql += (
                    " ON CONFLICT (run_id, seq) DO UPDATE SET phase = excluded.phase, "
                    "response = excluded.response, error = excluded.error, delta = excluded.delta, "
                    "tokens_in = excluded.tokens_in, tokens_out = excluded.tokens_out, "
                    "cost_usd = excluded.cost_usd, epoch = excluded.epoch, "
                    "finished_at = excluded.finished_at WHERE steps.phase IN ('intent', 'unknown') "
                    "AND steps.request_hash = excluded.request_hash"
                )
            if tx.execute(sql, values) != 1:
                raise StoreError(
                    f"run {run_id!r} step {seq}: already recorded (or recorded for another request); "
                    "supersede it first"
                )
            if phase == "done" and cost > 0:
                insert_ledger(
                    tx,
                    at=now,
                    agent=agent,
                    amount_usd=cost,
                    run_id=run_id,
                    seq=seq,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    model=model,
                )
            if snapshot is not None:
                snap = encode(tx, run_id, snapshot, threshold, now, "snapshot")
                tx.execute(
                    "INSERT INTO snapshots (run_id, seq, messages, created_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (run_id, seq) DO UPDATE SET messages = excluded.messages",
                    (run_id, seq, snap, now),
                )
            for event in events or ():
                insert_event(tx, event)

        await self.run(work)

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
            snap = tx.fetchone(
                "SELECT seq, messages FROM snapshots WHERE run_id = ? ORDER BY seq DESC LIMIT 1", (run_id,)
            )
            messages: list[Any] = []
            last = -1
            if snap is not None:
                messages = list(decode(snap["messages"], tx=tx))
                last = int(snap["seq"])
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
            if spent:
                tx.execute(
                    "UPDATE runs SET superseded_spend = superseded_spend + ? WHERE run_id = ?",
                    (spent, run_id),
                )
            n = tx.execute("DELETE FROM steps WHERE run_id = ? AND seq >= ?", (run_id, from_seq))
            tx.execute("DELETE FROM snapshots WHERE run_id = ? AND seq >= ?", (run_id, from_seq))
            if event is not None:
                insert_event(tx, event)
            return n

        return await self.run(work)


def _hash(request: Any) -> str:
    return request_hash(request)
