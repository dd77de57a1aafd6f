-- Versioned agent definitions: every change to an agent is a new row, with its author and reason.
-- state: proposed (waiting for the node to roll it out) | active (the one the agent runs) |
-- superseded | rolled_back | refused. `definition` is the agent's spec as versioned JSON.

CREATE TABLE agent_versions (
    agent TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,
    author TEXT NOT NULL,
    reason TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT,
    idem_key TEXT UNIQUE,
    created_at REAL NOT NULL,
    changed_at REAL NOT NULL,
    PRIMARY KEY (agent, version)
);
CREATE INDEX agent_versions_state ON agent_versions (state);
