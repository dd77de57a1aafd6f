"""Durable mailboxes in the store: for what must not be lost (tasks, consults between agents).

A message is inserted once per ``(box, key)`` (the sender's idempotency key: a retried send is the
same message), claimed under a lease by one consumer, and acknowledged when handled. A consumer that
crashes leaves its lease to run out; the message is then claimed again (``attempts`` counts), and the
handler makes its effects idempotent with ``message.key``, so it is *handled* once. A message that has
been delivered ``max_attempts`` times without an ack is a dead letter: set aside (``dead_letters``),
never handed out again until ``retry`` puts it back.

``request`` / ``reply`` is the consult shape: the request carries a deadline; a reply after it is
dropped (``reply`` returns False) and the asker gets :class:`~beamish.errors.ConsultDeadline`, never a late
answer. Either the asker got the reply or the reply was dropped: one row decides, atomically.

Leases and deadlines are decided inside the transaction that writes them, on the database's clock on
PostgreSQL (as the cluster's leases are), so nodes whose clocks disagree neither steal a consumer's
message early nor keep one past its lease.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from beamish._clock import SYSTEM_CLOCK, Clock
from beamish._exceptions import ConsultDeadline, SpecError, StoreError
from beamish.bus._notify import CHANNEL, Waker
from beamish.journal._payload import envelope, open_envelope
from beamish.journal._sql import Row, SyncTx, for_update_skip_locked

if TYPE_CHECKING:
    from beamish.journal import Store

_REQUEST_STATE = "SELECT status, reply, deadline_at FROM mailbox WHERE id = ?"


@dataclass(frozen=True)
class Message:
    """A claimed message. ``key`` is the sender's idempotency key; use it for the handler's effects."""

    id: int
    box: str
    key: str
    payload: Any
    attempts: int
    lease_owner: str
    lease_until: float
    deadline_at: float | None


class Mailboxes:
    """Every durable mailbox of a store, seen from one consumer (``owner``) in this process."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = SYSTEM_CLOCK,
        owner: str | None = None,
        lease_s: float = 30.0,
        poll_s: float = 1.0,
        max_attempts: int = 10,
    ) -> None:
        if lease_s <= 0 or poll_s <= 0:
            raise SpecError(f"lease_s and poll_s must be > 0, got {lease_s!r}, {poll_s!r}")
        if max_attempts < 1:
            raise SpecError(f"max_attempts must be >= 1, got {max_attempts!r}")
        self.max_attempts = max_attempts
        self.store = store
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.waker = Waker(store, clock)

    async def start(self) -> None:
        """Start listening for wake-ups (NOTIFY on PostgreSQL); until then, polling alone delivers."""
        await self.waker.started()

    async def close(self) -> None:
        await self.waker.close()

    async def __aenter__(self) -> Mailboxes:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- sending ------------------------------------------------------------------------------------

    async def put(
        self,
        box: str,
        payload: Any,
        *,
        key: str,
        deadline_at: float | None = None,
        deadline_s: float | None = None,
    ) -> int:
        """Insert a message (or find the one already sent with ``key``); returns its id. A deadline is
        an absolute ``deadline_at`` or ``deadline_s`` from now on the store's clock."""
        _check_name("box", box)
        _check_name("key", key)
        body = envelope(payload, f"message to {box!r}")

        def work(tx: SyncTx) -> tuple[int, bool]:
            now = self._now(tx)
            deadline = deadline_at if deadline_s is None else now + deadline_s
            row = tx.fetchone(
                "INSERT INTO mailbox (box, idem_key, payload, status, deadline_at, created_at) "
                "VALUES (?, ?, ?, 'ready', ?, ?) ON CONFLICT (box, idem_key) DO NOTHING RETURNING id",
                (box, key, body, deadline, now),
            )
            if row is None:
                found = tx.fetchone("SELECT id FROM mailbox WHERE box = ? AND idem_key = ?", (box, key))
                assert found is not None
                return int(found["id"]), False
            self._notify_in(tx, int(row["id"]))
            return int(row["id"]), True

        mid, created = await self.store.run(work)
        if created:
            await self._notify_after(mid)
        return mid

    # --- consuming ----------------------------------------------------------------------------------

    async def claim(self, box: str, *, lease_s: float | None = None) -> Message | None:
        """Take the oldest available message of ``box`` under a lease, or None if there is none."""
        lease = self.lease_s if lease_s is None else lease_s

        def work(tx: SyncTx) -> Message | None:
            now = self._now(tx)
            # A message whose consumers keep dying with it is set aside, not handed out forever.
            tx.execute(
                "UPDATE mailbox SET status = 'dead', finished_at = ? WHERE box = ? AND status = 'claimed' "
                "AND lease_until < ? AND attempts >= ?",
                (now, box, now, self.max_attempts),
            )
            tx.execute(
                "UPDATE mailbox SET status = 'expired', finished_at = ? WHERE box = ? "
                "AND status IN ('ready', 'claimed') AND deadline_at IS NOT NULL AND deadline_at < ?",
                (now, box, now),
            )
            row = tx.fetchone(
                "SELECT id FROM mailbox WHERE box = ? AND (status = 'ready' OR "
                "(status = 'claimed' AND lease_until < ?)) ORDER BY id LIMIT 1"
                + for_update_skip_locked(tx.dialect),
                (box, now),
            )
            if row is None:
                return None
            mid = int(row["id"])
            tx.execute(
                "UPDATE mailbox SET status = 'claimed', lease_owner = ?, lease_until = ?, "
                "attempts = attempts + 1 WHERE id = ?",
                (self.owner, now + lease, mid),
            )
            got = tx.fetchone(
                "SELECT id, box, idem_key, payload, attempts, lease_owner, lease_until, deadline_at "
                "FROM mailbox WHERE id = ?",
                (mid,),
            )
            assert got is not None
            return _message(got)

        return await self.store.run(work)

    async def receive(
        self, box: str, *, timeout: float | None = None, lease_s: float | None = None
    ) -> Message:
        """Wait for a message of ``box`` and claim it; raises TimeoutError after ``timeout`` seconds."""
        self.waker.start()
        deadline = None if timeout is None else self.clock.time() + timeout
        while True:
            seen = self.waker.generation
            msg = await self.claim(box, lease_s=lease_s)
            if msg is not None:
                return msg
            wait = self.poll_s if deadline is None else min(self.poll_s, deadline - self.clock.time())
            if wait <= 0:
                raise TimeoutError(f"no message in mailbox {box!r} within {timeout}s")
            await self.waker.wait(wait, since=seen)

    async def ack(self, message: Message) -> bool:
        """Mark the message handled. False if this consumer's lease was lost to another claimer."""
        return await self._finish(message, "acked", None)

    async def release(self, message: Message) -> bool:
        """Give the message back now (e.g. on shutdown) instead of letting the lease run out."""
        n = await self.store.run(
            lambda tx: tx.execute(
                "UPDATE mailbox SET status = 'ready', lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND status = 'claimed' AND lease_owner = ?",
                (message.id, self.owner),
            )
        )
        if n:
            await self._notify_after(message.id)
        return n == 1

    async def extend(self, message: Message, lease_s: float | None = None) -> bool:
        """Renew the lease of a message still being worked on. False if it was lost."""
        lease = self.lease_s if lease_s is None else lease_s
        n = await self.store.run(
            lambda tx: tx.execute(
                "UPDATE mailbox SET lease_until = ? WHERE id = ? AND status = 'claimed' AND lease_owner = ?",
                (self._now(tx) + lease, message.id, self.owner),
            )
        )
        return n == 1

    async def dead_letters(self, box: str, limit: int = 100) -> list[Message]:
        """Messages set aside after ``max_attempts`` deliveries that were never acknowledged."""
        rows = await self.store.fetchall(
            "SELECT id, box, idem_key, payload, attempts, lease_owner, lease_until, deadline_at FROM mailbox "
            "WHERE box = ? AND status = 'dead' ORDER BY id LIMIT ?",
            (box, limit),
        )
        return [_message(r) for r in rows]

    async def retry(self, message_id: int) -> bool:
        """Put a dead letter back in its box with a fresh count (after fixing what killed it)."""
        n = await self.store.run(
            lambda tx: tx.execute(
                "UPDATE mailbox SET status = 'ready', attempts = 0, lease_owner = NULL, lease_until = NULL, "
                "finished_at = NULL WHERE id = ? AND status = 'dead'",
                (message_id,),
            )
        )
        if n:
            await self._notify_after(message_id)
        return n == 1

    # --- request / reply (consults) -----------------------------------------------------------------

    async def reply(self, message: Message, payload: Any) -> bool:
        """Answer a request. False when the answer is late (deadline passed) and so dropped."""
        return await self._finish(message, "replied", envelope(payload, f"reply to message {message.id}"))

    async def request(self, box: str, payload: Any, *, key: str, deadline_s: float) -> Any:
        """Send a request and wait for its reply until ``deadline_s`` from now.

        Idempotent on ``key``: asking again (a replayed run) finds the same request, and its reply if
        one came. Raises :class:`~beamish.errors.ConsultDeadline` when no reply came in time; a reply sent
        after that is dropped.
        """
        if deadline_s <= 0:
            raise SpecError(f"deadline_s: expected a number of seconds > 0, got {deadline_s!r}")
        self.waker.start()
        # the stored deadline is on the store's clock (it decides whether a reply is late); this
        # process waits by its own monotonic reckoning of the same span
        mid = await self.put(box, payload, key=key, deadline_s=deadline_s)
        deadline = self.clock.time() + deadline_s
        while True:
            seen = self.waker.generation
            row = await self.store.fetchone(_REQUEST_STATE, (mid,))
            if row is None:
                raise StoreError(f"request {mid} to {box!r} vanished from the store")
            if row["status"] == "replied":
                return open_envelope(row["reply"], "mailbox")
            if row["status"] == "expired" or self.clock.time() >= deadline:
                if await self._expire(mid):
                    raise ConsultDeadline(f"no reply from {box!r} within {deadline_s}s (request {key!r})")
                continue  # a reply landed just before the deadline: read it
            await self.waker.wait(min(self.poll_s, deadline - self.clock.time()), since=seen)

    async def _expire(self, mid: int) -> bool:
        n = await self.store.run(
            lambda tx: tx.execute(
                "UPDATE mailbox SET status = 'expired', finished_at = ? "
                "WHERE id = ? AND status IN ('ready', 'claimed')",
                (self._now(tx), mid),
            )
        )
        if n:
            return True
        row = await self.store.fetchone("SELECT status FROM mailbox WHERE id = ?", (mid,))
        return row is not None and row["status"] == "expired"

    # --- internals ----------------------------------------------------------------------------------

    async def _finish(self, message: Message, status: str, reply: str | None) -> bool:
        sql = (
            "UPDATE mailbox SET status = ?, reply = ?, finished_at = ? "
            "WHERE id = ? AND status = 'claimed' AND lease_owner = ?"
        )
        if status == "replied":
            sql += " AND (deadline_at IS NULL OR deadline_at >= ?)"

        def work(tx: SyncTx) -> int:
            now = self._now(tx)
            params: list[Any] = [status, reply, now, message.id, self.owner]
            n = tx.execute(sql, [*params, now] if status == "replied" else params)
            if n:
                self._notify_in(tx, message.id)
            return n

        n = await self.store.run(work)
        if n:
            await self._notify_after(message.id)
        return n == 1

    def _now(self, tx: SyncTx) -> float:
        """The time a lease or deadline decision inside ``tx`` is made at: the database's clock on
        PostgreSQL (nodes need not agree on the time), else this mailbox's clock."""
        return self.store.decide_now(tx, self.clock)

    def _notify_in(self, tx: SyncTx, mid: int) -> None:
        """On PostgreSQL, NOTIFY inside the transaction: delivered only if and when it commits."""
        if tx.dialect == "postgresql":
            tx.execute("SELECT pg_notify(?, ?)", (CHANNEL, str(mid)))

    async def _notify_after(self, mid: int) -> None:
        """Wake this process's waiters now; on SQLite also the store's in-process listeners."""
        self.waker.wake()
        if self.store.dialect != "postgresql":
            await self.store.notify(CHANNEL, str(mid))


def _message(row: Row) -> Message:
    return Message(
        id=int(row["id"]),
        box=str(row["box"]),
        key=str(row["idem_key"]),
        payload=open_envelope(row["payload"], "mailbox"),
        attempts=int(row["attempts"]),
        lease_owner=str(row["lease_owner"] or ""),
        lease_until=float(row["lease_until"] or 0.0),
        deadline_at=None if row["deadline_at"] is None else float(row["deadline_at"]),
    )


def _check_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not value or len(value) > 400:
        raise SpecError(f"{what}: expected a non-empty string of at most 400 characters, got {value!r}")
