-- Circuit breakers per provider:model, shared by every agent, process and node on this store:
-- closed (calls go through; ``failures`` counts consecutive failed attempts), open since
-- ``opened_at`` (calls go straight to the agent's fallback), half_open (one caller probes until
-- ``probe_until``; the others keep to the fallback).
CREATE TABLE breakers (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL DEFAULT 'closed',
    failures INTEGER NOT NULL DEFAULT 0,
    opened_at DOUBLE PRECISION NOT NULL DEFAULT 0,
    probe_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION NOT NULL DEFAULT 0
);
