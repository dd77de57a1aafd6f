-- The scheduler's tables. A tick is identified by (schedule_id, nominal_fire_time) and decided once:
-- the UNIQUE key makes a second claim of the same tick fail on any node.

CREATE TABLE schedules (
    schedule_id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    input TEXT NOT NULL,
    spec TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    cursor_at DOUBLE PRECISION NOT NULL,
    next_due_at DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX schedules_next_due ON schedules (next_due_at);

CREATE TABLE schedule_fires (
    schedule_id TEXT NOT NULL,
    nominal_fire_time TEXT NOT NULL,
    nominal_at DOUBLE PRECISION NOT NULL,
    due_at DOUBLE PRECISION NOT NULL,
    action TEXT NOT NULL,
    status TEXT NOT NULL,
    run_id TEXT,
    agent TEXT NOT NULL,
    input TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    claimed_by TEXT,
    claimed_at DOUBLE PRECISION NOT NULL,
    dispatched_at DOUBLE PRECISION,
    UNIQUE (schedule_id, nominal_fire_time)
);
CREATE INDEX schedule_fires_status ON schedule_fires (status, claimed_at);
CREATE INDEX schedule_fires_history ON schedule_fires (schedule_id, nominal_at);
