"""A run's message history from its snapshots: the latest whole list, then the segments after it.

Snapshots of format 1 (written before journal schema 3) hold the whole message list; format 2 holds
the messages added since the snapshot at ``prev_seq``, so storage grows linearly with a run instead
of with its square. The history is the latest format 1 snapshot (if any) extended by the chain of
format 2 segments after it; where a link is missing the chain stops and the caller reads step
deltas from there.
"""

from __future__ import annotations

from typing import Any

from beamish._exceptions import CorruptStore
from beamish.journal._payload import decode, envelope_ref, load_bodies
from beamish.journal._sql import SyncTx

FULL = 1
SEGMENT = 2

_CHAIN = (
    "SELECT seq, format, prev_seq, messages FROM snapshots WHERE run_id = ? AND seq >= "
    "COALESCE((SELECT MAX(seq) FROM snapshots WHERE run_id = ? AND format = 1), -1) ORDER BY seq"
)


def load_history(tx: SyncTx, run_id: str) -> tuple[list[Any], int]:
    """``(messages, seq)``: the history through snapshot ``seq`` (-1 and ``[]`` without snapshots)."""
    rows = tx.fetchall(_CHAIN, (run_id, run_id))
    refs = {ref for r in rows if (ref := envelope_ref(r["messages"])) is not None}
    bodies = load_bodies(tx, refs) if refs else {}
    messages: list[Any] = []
    last = -1
    for r in rows:
        fmt, seq = int(r["format"]), int(r["seq"])
        if fmt == FULL:
            messages, last = list(decode(r["messages"], bodies)), seq
        elif fmt == SEGMENT:
            if r["prev_seq"] is None or int(r["prev_seq"]) != last:
                break  # a missing link: the step deltas after `last` fill the rest in
            messages.extend(decode(r["messages"], bodies))
            last = seq
        else:
            raise CorruptStore(f"run {run_id!r}: snapshot {seq} has unknown format {fmt}")
    return messages, last
