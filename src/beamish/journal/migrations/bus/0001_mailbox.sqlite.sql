-- Durable mailboxes: what must not be lost (tasks, consults). A message is inserted once per
-- (box, idem_key), claimed under a lease, and acknowledged (or replied to) when handled.

CREATE TABLE mailbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    box TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    deadline_at REAL,
    reply TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    UNIQUE (box, idem_key)
);
CREATE INDEX mailbox_ready ON mailbox (box, status, id);
