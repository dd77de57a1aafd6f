"""The durable journal: runs, steps, events, leases and the ledger, on SQLite or PostgreSQL.

``open_store(url)`` gives a :class:`Store`; :class:`RunJournal` is what the agent loop calls to
journal (and, after a restart, replay) each model and tool step.
"""

from beamish._exports import claim_public_module as _claim_public_module
from beamish.journal._backup import BackupReport, backup_store, restore_store
from beamish.journal._outage import Outage, OutagePolicy
from beamish.journal._records import Lease, LedgerEntry, PruneReport, Run, Step
from beamish.journal._replay import RunJournal, StepResult
from beamish.journal._sql import AsyncTx, SyncTx
from beamish.journal._store import Store, open_store

__all__ = [
    "AsyncTx",
    "BackupReport",
    "Lease",
    "LedgerEntry",
    "Outage",
    "OutagePolicy",
    "PruneReport",
    "Run",
    "RunJournal",
    "Step",
    "StepResult",
    "Store",
    "SyncTx",
    "backup_store",
    "open_store",
    "restore_store",
]


_claim_public_module(globals(), __all__, __name__)
