-- Provider rate limits shared by every agent, process and node on this store: the limits per
-- provider or provider:model (configured, and a pause learned from a 429's Retry-After), and the log
-- of requests in the last minute, each with the tokens it reserved (then the tokens it used).
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    requests_per_minute INTEGER,
    tokens_per_minute INTEGER,
    blocked_until DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE TABLE rate_limit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX rate_limit_log_key_at ON rate_limit_log (key, at);
