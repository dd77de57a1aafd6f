"""Runs: create (idempotent on run_id), read, list, update, claim (a new fencing epoch)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from beamish._events import Event
from beamish._exceptions import CorruptStore, Fenced, RunNotFound, SpecError
from beamish._exits import ExitReason, exit_from_json
from beamish.journal._base import StoreBase, check_epoch
from beamish.journal._eventlog import insert_event
from beamish.journal._payload import canonical, decode, envelope, masked
from beamish.journal._records import RUN_STATUSES, Lease, Run
from beamish.journal._sql import Row, SyncTx, for_share

T = TypeVar("T")
_UNSET: Any = object()
#: A run row's columns as :func:`run_from_row` reads them (``SELECT {RUN_COLUMNS} FROM runs``).
RUN_COLUMNS = _RUN_COLS = (
    "run_id, agent, input, status, output, reason, meta, lease_owner, epoch, created_at, updated_at, "
    "priority, concurrency_key, "
    "superseded_spend + COALESCE((SELECT SUM(s.cost_usd) FROM steps s WHERE s.run_id = runs.run_id "
    "AND s.phase = 'done'), 0) AS spend_usd"
)


#: In-process wakes on a run's status change: run_id → the events of those waiting for it (with
#: their loops). Every Store of the process signals here, so a waiter learns of a run that ends
#: under another Store instance of the same process at once; other processes are found by reading.
_watchers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}


@contextlib.contextmanager
def watch_run(run_id: str) -> Iterator[asyncio.Event]:
    """An event set whenever a Store of this process changes ``run_id``'s status (a hint: read
    the run to know what it is now; a change made by another process sets nothing)."""
    entry = (asyncio.get_running_loop(), asyncio.Event())
    _watchers.setdefault(run_id, set()).add(entry)
    try:
        yield entry[1]
    finally:
        found = _watchers.get(run_id)
        if found is not None:
            found.discard(entry)
            if not found:
                del _watchers[run_id]


def run_changed(run_id: str) -> None:
    """Wake this process's waiters on ``run_id`` (see :func:`watch_run`); call after the commit."""
    for loop, event in tuple(_watchers.get(run_id, ())):
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is running:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # that loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(event.set)


def _check_status(status: str) -> str:
    if status not in RUN_STATUSES:
        raise SpecError(f"run status {status!r} is not one of {sorted(RUN_STATUSES)}")
    return status


#: Priorities fit a 32-bit INTEGER column on every backend.
PRIORITY_RANGE = (-1_000_000, 1_000_000)


def check_queue_place(priority: object, concurrency_key: object) -> None:
    """Refuse a priority or concurrency key the queue cannot order or compare, naming it."""
    low, high = PRIORITY_RANGE
    if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
        raise SpecError(f"priority={priority!r} is invalid: expected a whole number from {low} to {high}")
    if concurrency_key is not None and (
        not isinstance(concurrency_key, str) or not concurrency_key or len(concurrency_key) > 400
    ):
        raise SpecError(
            f"concurrency_key={concurrency_key!r} is invalid: expected a non-empty string of at most "
            "400 characters (or None)"
        )


def run_from_row(row: Row) -> Run:
    reason = None
    if row["reason"] is not None:
        try:
            reason = exit_from_json(json.loads(row["reason"]))
        except (ValueError, TypeError) as exc:
            raise CorruptStore(f"run {row['run_id']!r}: its exit reason cannot be read ({exc})") from exc
    return Run(
        run_id=str(row["run_id"]),
        agent=str(row["agent"]),
        input=decode(row["input"]),
        status=str(row["status"]),
        output=decode(row["output"]),
        reason=reason,
        meta=dict(json.loads(row["meta"])),
        lease_owner=row["lease_owner"],
        epoch=int(row["epoch"]),
        spend_usd=float(row["spend_usd"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        priority=int(row["priority"]),
        concurrency_key=row["concurrency_key"],
    )


def fetch_run(tx: SyncTx, run_id: str) -> Run:
    row = tx.fetchone(f"SELECT {_RUN_COLS} FROM runs WHERE run_id = ?", (run_id,))
    if row is None:
        raise RunNotFound(f"no run {run_id!r}")
    return run_from_row(row)


def insert_run(
    tx: SyncTx,
    run_id: str,
    agent: str,
    input_text: str,
    meta_json: str,
    status: str,
    now: float,
    *,
    priority: int = 0,
    concurrency_key: str | None = None,
) -> bool:
    """The one INSERT of a run row (``Store.create_run`` and a schedule tick's claim use it); an
    existing ``run_id`` wins. Returns whether the row was created."""
    n = tx.execute(
        "INSERT INTO runs (run_id, agent, input, status, meta, created_at, updated_at, priority, "
        "concurrency_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
        (run_id, agent, input_text, status, meta_json, now, now, priority, concurrency_key),
    )
    return n == 1


class RunsMixin(StoreBase):
    """Run rows. Statuses: queued, running, succeeded, failed, paused, needs_attention."""

    async def create_run(
        self,
        agent: str,
        input: Any,
        *,
        run_id: str | None = None,
        meta: dict[str, Any] | None = None,
        status: str = "queued",
        priority: int = 0,
        concurrency_key: str | None = None,
        events: Callable[[str], Sequence[Event]] | None = None,
    ) -> tuple[Run, bool]:
        """Create a run, or return the existing one when ``run_id`` (the idempotency key) is taken.

        Returns ``(run, created)``; ``created`` is False when the run already existed (its stored
        agent and input win: a retried submission must not rewrite a run). ``priority`` (higher
        first) and ``concurrency_key`` (one run in flight per key) place it in its agent's queue.
        ``events(run_id)`` are stored in the same transaction when (only when) the run is created.
        """
        check_queue_place(priority, concurrency_key)
        if not agent:
            raise SpecError("a run needs an agent name")
        rid = run_id if run_id is not None else uuid.uuid4().hex
        if not rid or len(rid) > 400:
            raise SpecError(f"run_id must be a non-empty string of at most 400 characters, got {rid!r}")
        _check_status(status)
        input_env = envelope(input, "run input", mask=True)
        meta_json = canonical(meta or {}, "run meta")
        now = self.clock.time()

        def work(tx: SyncTx) -> tuple[Run, bool]:
            created = insert_run(
                tx,
                rid,
                agent,
                input_env,
                meta_json,
                status,
                now,
                priority=priority,
                concurrency_key=concurrency_key,
            )
            if created and events is not None:
                for event in events(rid):
                    insert_event(tx, event)
            return fetch_run(tx, rid), created

        return await self.run(work)

    async def get_run(self, run_id: str) -> Run:
        """The run, or :class:`~beamish.errors.RunNotFound`."""
        return await self.read(lambda tx: fetch_run(tx, run_id))

    async def list_runs(
        self,
        *,
        agent: str | None = None,
        status: str | Iterable[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        since: float | None = None,
    ) -> list[Run]:
        """Runs, newest first, filtered by agent, status (one or several) and creation time."""
        where: list[str] = []
        params: list[Any] = []
        if agent is not None:
            where.append("agent = ?")
            params.append(agent)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                _check_status(s)
            where.append(f"status IN ({','.join('?' * len(statuses))})")
            params.extend(statuses)
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        sql = f"SELECT {_RUN_COLS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, run_id LIMIT ? OFFSET ?"
        params.extend([limit, offset])
        rows = await self.read(lambda tx: tx.fetchall(sql, params))
        return [run_from_row(r) for r in rows]

    async def update_run(
        self,
        run_id: str,
        *,
        status: str | None = None,
        output: Any = _UNSET,
        reason: ExitReason | None = _UNSET,
        meta: dict[str, Any] | Callable[[SyncTx], dict[str, Any]] | None = None,
        epoch: int | None = None,
        events: Sequence[Event] | Callable[[SyncTx], Sequence[Event]] = (),
    ) -> Run:
        """Change a run's status, output, exit reason or meta (merged). With ``epoch``, fenced.
        ``events`` are stored in the same transaction: whoever sees the new status sees them too.
        ``meta`` and ``events`` may be functions of the transaction (what they say is read in it);
        ``meta`` is called first."""
        sets: list[str] = ["updated_at = ?"]
        params: list[Any] = [self.clock.time()]
        if status is not None:
            sets.append("status = ?")
            params.append(_check_status(status))
        if output is not _UNSET:
            sets.append("output = ?")
            params.append(envelope(output, "run output", mask=True))
        if reason is not _UNSET:
            if reason is not None and not isinstance(reason, ExitReason):
                raise SpecError(f"a run's reason must be an ExitReason or None, got {reason!r}")
            sets.append("reason = ?")
            params.append(None if reason is None else masked(reason.to_json(), "exit reason"))

        def work(tx: SyncTx) -> Run:
            if epoch is not None:
                check_epoch(tx, run_id, epoch)
            all_sets, all_params = list(sets), list(params)
            changes = meta(tx) if callable(meta) else meta
            if changes:
                row = tx.fetchone("SELECT meta FROM runs WHERE run_id = ?", (run_id,))
                if row is None:
                    raise RunNotFound(f"no run {run_id!r}")
                merged = {**json.loads(row["meta"]), **changes}
                all_sets.append("meta = ?")
                all_params.append(canonical(merged, "run meta"))
            n = tx.execute(f"UPDATE runs SET {', '.join(all_sets)} WHERE run_id = ?", (*all_params, run_id))
            if n == 0:
                raise RunNotFound(f"no run {run_id!r}")
            for event in events(tx) if callable(events) else events:
                insert_event(tx, event)
            return fetch_run(tx, run_id)

        run = await self.run(work)
        if status is not None and status != "running":  # nobody waits for a run to start
            run_changed(run_id)
        return run

    async def queue_counts(self, agent: str | None = None) -> dict[str, dict[str, int]]:
        """Per agent: how many runs wait in its queue (``queued``) and how many are ``running``."""
        where, params = ("AND agent = ? ", (agent,)) if agent is not None else ("", ())
        sql = (
            "SELECT agent, status, COUNT(*) AS n FROM runs WHERE status IN ('queued', 'running') "
            f"{where}GROUP BY agent, status"
        )
        rows = await self.read(lambda tx: tx.fetchall(sql, params))
        counts: dict[str, dict[str, int]] = {}
        for row in rows:
            found = counts.setdefault(str(row["agent"]), {"queued": 0, "running": 0})
            found[str(row["status"])] = int(row["n"])
        return counts

    async def claim_run(
        self,
        run_id: str,
        owner: str,
        *,
        lease: Lease | None = None,
        status: str | None = None,
        meta: dict[str, Any] | None = None,
        events: Callable[[int], Sequence[Event]] | None = None,
    ) -> int:
        """Take a run over: a new fencing epoch, returned. Writes with an older epoch are then Fenced.

        With ``lease`` (the lease its agent is held by on a cluster), the claim is granted only while
        that lease is still held at that epoch and has not run out — Fenced otherwise — so a node
        that lost the agent, or was cut off past its lease, cannot take a run. ``status``, ``meta``
        (merged) and ``events(epoch)`` are written in the same transaction (a run's start is one).
        """
        epoch, _ = await self.claim_run_and(
            run_id, owner, None, lease=lease, status=status, meta=meta, events=events
        )
        return epoch

    async def claim_run_and(
        self,
        run_id: str,
        owner: str,
        then: Callable[[SyncTx, int], T] | None,
        *,
        lease: Lease | None = None,
        status: str | None = None,
        meta: dict[str, Any] | None = None,
        events: Callable[[int], Sequence[Event]] | None = None,
    ) -> tuple[int, T | None]:
        """:meth:`claim_run`, then ``then(tx, epoch)`` in the same transaction (e.g. loading the
        run's journal: one round trip for a run's start); returns the epoch and what ``then`` did."""
        if status is not None:
            _check_status(status)
        meta_json = None if not meta else canonical(meta, "run meta")

        def work(tx: SyncTx) -> tuple[int, T | None]:
            if lease is not None:
                held = tx.fetchone(
                    "SELECT expires_at FROM leases WHERE name = ? AND owner = ? AND epoch = ?"
                    + for_share(tx.dialect),
                    (lease.name, lease.owner, lease.epoch),
                )
                if held is None or float(held["expires_at"]) <= self.tx_now(tx):
                    raise Fenced(
                        f"run {run_id!r}: lease {lease.name!r} (epoch {lease.epoch}) is no longer held "
                        f"by {lease.owner!r} or has run out; the run was not claimed"
                    )
            sets, params = "epoch = epoch + 1, lease_owner = ?, updated_at = ?", [owner, self.clock.time()]
            if status is not None:
                sets, params = f"{sets}, status = ?", [*params, status]
            n = tx.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", (*params, run_id))
            if n == 0:
                raise RunNotFound(f"no run {run_id!r}")
            row = tx.fetchone("SELECT epoch, meta FROM runs WHERE run_id = ?", (run_id,))
            assert row is not None
            if meta_json is not None:
                merged = canonical({**json.loads(row["meta"]), **json.loads(meta_json)}, "run meta")
                tx.execute("UPDATE runs SET meta = ? WHERE run_id = ?", (merged, run_id))
            epoch = int(row["epoch"])
            for event in events(epoch) if events is not None else ():
                insert_event(tx, event)
            return epoch, None if then is None else then(tx, epoch)

        return await self.run(work)
