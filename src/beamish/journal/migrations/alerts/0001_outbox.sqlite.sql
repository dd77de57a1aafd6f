-- The alert outbox: an alert is a row before it is a request, so a crash or a change of node
-- between the event and its delivery loses nothing (delivered at least once). The cursor is the
-- last event id routed into the outbox.

CREATE TABLE alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sink TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at DOUBLE PRECISION NOT NULL,
    lease_until DOUBLE PRECISION,
    last_error TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    sent_at DOUBLE PRECISION
);
CREATE INDEX alert_outbox_due ON alert_outbox (status, next_at);
CREATE INDEX alert_outbox_dedup ON alert_outbox (sink, dedup_key, created_at);
CREATE TABLE alert_cursor (name TEXT PRIMARY KEY, event_id BIGINT NOT NULL);
