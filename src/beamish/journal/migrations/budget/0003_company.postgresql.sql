-- Budget settings shared by every agent process and node (the company-wide caps), as versioned JSON.
CREATE TABLE budget_config (
    name TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
