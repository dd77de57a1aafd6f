"""A message handler whose effect is idempotent on the message's key (as a tool with an idempotency key)."""

from __future__ import annotations

import os

from beamish.bus import Message
from beamish.journal import Store

DDL = [
    "CREATE TABLE IF NOT EXISTS test_effects (idem_key TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS test_handled (idem_key TEXT NOT NULL, attempt INTEGER NOT NULL, pid INTEGER)",
]


async def handle(store: Store, msg: Message) -> None:
    await store.execute(
        "INSERT INTO test_handled (idem_key, attempt, pid) VALUES (?, ?, ?)",
        (msg.key, msg.attempts, os.getpid()),
    )
    await store.execute(
        "INSERT INTO test_effects (idem_key, body) VALUES (?, ?) ON CONFLICT (idem_key) DO NOTHING",
        (msg.key, str(msg.payload)),
    )
