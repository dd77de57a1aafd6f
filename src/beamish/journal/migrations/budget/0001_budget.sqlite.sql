-- Budgets: money held for model calls in flight, pauses that outlive a restart, and the lock row
-- that serialises budget transactions. Spend itself is the journal's ledger table (kind 'spend').
CREATE TABLE budget_reservations (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    run_id TEXT NOT NULL,
    amount_nano INTEGER NOT NULL,
    at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX budget_reservations_agent ON budget_reservations (agent);

CREATE TABLE budget_pauses (
    subject TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    at REAL NOT NULL
);

CREATE TABLE budget_lock (
    id INTEGER PRIMARY KEY,
    n INTEGER NOT NULL
);
INSERT INTO budget_lock (id, n) VALUES (1, 0);

CREATE INDEX budget_ledger_kind_at ON ledger (kind, at);
