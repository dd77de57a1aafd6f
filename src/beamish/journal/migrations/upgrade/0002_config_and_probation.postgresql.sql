-- What each agent is in the config file the company last read (at start or at reload), so a restart
-- with that same file keeps the version that ran (an upgrade, a rollback) and reports the difference
-- as drift, while an edited file is rolled out like a reload.
CREATE TABLE agent_config (
    agent TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    recorded_at DOUBLE PRECISION NOT NULL
);
-- An active version on probation: the version a rollback returns to, and since when (store clock)
-- its runs count for the verdict. Both NULL once it passed (or never was on probation).
ALTER TABLE agent_versions ADD COLUMN fallback INTEGER;
ALTER TABLE agent_versions ADD COLUMN trial_since DOUBLE PRECISION;
