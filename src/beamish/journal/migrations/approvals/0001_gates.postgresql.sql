-- Gates: a run stopped before a tool call that needs a person (an approval) or at a question
-- (ask_human). The row is all a waiting run holds; a decision queues the run again.

CREATE TABLE gates (
    gate_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    agent TEXT NOT NULL,
    tool TEXT NOT NULL,
    args TEXT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    approvers TEXT NOT NULL,
    status TEXT NOT NULL,
    on_expiry TEXT NOT NULL,
    escalate_to TEXT NOT NULL,
    ttl_s DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    escalated BIGINT NOT NULL DEFAULT 0,
    decided_by TEXT,
    decided_at DOUBLE PRECISION,
    note TEXT,
    edited_args TEXT,
    answer TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (run_id, seq)
);
CREATE INDEX gates_pending ON gates (status, expires_at);
