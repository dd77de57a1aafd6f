"""Retention: drop finished runs (and their steps, snapshots, orphaned payloads) and old events.

The ledger is kept: it is small, and budgets over long windows (per month, total) read it.
"""

from __future__ import annotations

from datetime import timedelta

from beamish._exceptions import SpecError
from beamish.journal._base import StoreBase
from beamish.journal._records import PruneReport
from beamish.journal._sql import SyncTx

_BATCH = 500


class PruneMixin(StoreBase):
    async def prune(self, older_than: float | timedelta, *, keep_failed: bool = True) -> PruneReport:
        """Delete runs finished more than ``older_than`` (seconds or a timedelta) ago, and older events.

        Only ``succeeded`` runs — and ``failed`` ones unless ``keep_failed`` — are deleted; queued,
        running, paused and needs_attention runs are never touched, whatever their age.
        """
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else float(older_than)
        if seconds < 0:
            raise SpecError(f"prune older_than must be ≥ 0, got {older_than!r}")
        cutoff = self.clock.time() - seconds
        statuses = ["succeeded"] if keep_failed else ["succeeded", "failed"]
        marks = ",".join("?" * len(statuses))

        def work(tx: SyncTx) -> PruneReport:
            runs = steps = 0
            while True:
                rows = tx.fetchall(
                    f"SELECT run_id FROM runs WHERE status IN ({marks}) AND updated_at < ? LIMIT ?",
                    (*statuses, cutoff, _BATCH),
                )
                if not rows:
                    break
                ids = [str(r["run_id"]) for r in rows]
                in_ids = ",".join("?" * len(ids))
                steps += tx.execute(f"DELETE FROM steps WHERE run_id IN ({in_ids})", ids)
                tx.execute(f"DELETE FROM snapshots WHERE run_id IN ({in_ids})", ids)
                tx.execute(f"DELETE FROM payload_refs WHERE run_id IN ({in_ids})", ids)
                runs += tx.execute(f"DELETE FROM runs WHERE run_id IN ({in_ids})", ids)
            events = tx.execute("DELETE FROM events WHERE at < ?", (cutoff,))
            payloads = tx.execute(
                "DELETE FROM payloads WHERE NOT EXISTS "
                "(SELECT 1 FROM payload_refs r WHERE r.hash = payloads.hash)"
            )
            return PruneReport(runs=runs, steps=steps, events=events, payloads=payloads)

        return await self.run(work)
