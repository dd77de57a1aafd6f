-- A run's generation grows with each divergence, so re-performed effects get fresh idempotency keys.
ALTER TABLE runs ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
