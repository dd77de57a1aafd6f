-- The cluster's node registry: one row per node that ever joined, kept fresh by its heartbeat.
-- Agents (or groups) are held through the journal's `leases` table, under names `unit:<name>`.

CREATE TABLE cluster_nodes (
    node_id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    state TEXT NOT NULL,
    drain INTEGER NOT NULL DEFAULT 0,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    lease_s REAL NOT NULL
);
CREATE INDEX cluster_nodes_heartbeat ON cluster_nodes (heartbeat_at);
CREATE INDEX leases_owner ON leases (owner);
