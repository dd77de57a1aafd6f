-- The next tick and the one after it, computed ahead of time, so claiming a due tick needs no cron
-- arithmetic while SQLite's writer is held (1,000 schedules due at 14:00).
ALTER TABLE schedules ADD COLUMN next_nominal_at REAL;
ALTER TABLE schedules ADD COLUMN following_at REAL;
