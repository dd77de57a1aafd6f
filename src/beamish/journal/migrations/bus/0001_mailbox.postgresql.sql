-- Durable mailboxes: what must not be lost (tasks, consults). A message is inserted once per
-- (box, idem_key), claimed under a lease, and acknowledged (or replied to) when handled.

CREATE TABLE mailbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    box TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    deadline_at DOUBLE PRECISION,
    reply TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    UNIQUE (box, idem_key)
);
CREATE INDEX mailbox_ready ON mailbox (box, status, id);
