-- The journal's tables: runs, steps, snapshots, payloads, events, leases, ledger.
PRAGMA application_id = 1651340136;

CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    reason TEXT,
    meta TEXT NOT NULL DEFAULT '{}',
    lease_owner TEXT,
    epoch INTEGER NOT NULL DEFAULT 0,
    superseded_spend REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX runs_agent_status ON runs (agent, status);
CREATE INDEX runs_status_updated ON runs (status, updated_at);

CREATE TABLE steps (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    phase TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    effect TEXT,
    idem_key TEXT,
    request_hash TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT,
    error TEXT,
    delta TEXT,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    epoch INTEGER NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE snapshots (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    messages TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE payloads (
    hash TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE payload_refs (
    run_id TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (run_id, hash)
);
CREATE INDEX payload_refs_hash ON payload_refs (hash);

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX events_subject ON events (subject, id);
CREATE INDEX events_at ON events (at);

CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT,
    epoch INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL DEFAULT 0,
    acquired_at REAL
);

CREATE TABLE ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    agent TEXT NOT NULL,
    run_id TEXT,
    seq INTEGER,
    kind TEXT NOT NULL,
    amount_usd REAL NOT NULL,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    model TEXT,
    note TEXT
);
CREATE INDEX ledger_agent_at ON ledger (agent, at);
CREATE INDEX ledger_run ON ledger (run_id);
