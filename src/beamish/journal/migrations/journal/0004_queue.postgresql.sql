-- A queue in front of each agent: higher priority first, first in first out within a priority, and at
-- most one run in flight per concurrency key (e.g. one per customer). Rows written before this version
-- have priority 0 and no key.
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
CREATE INDEX runs_queue ON runs (agent, status, priority, created_at);
