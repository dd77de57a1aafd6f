-- The next tick and the one after it, computed ahead of time, so claiming a due tick needs no cron
-- arithmetic while the schedule's row is locked (1,000 schedules due at 14:00).
ALTER TABLE schedules ADD COLUMN next_nominal_at DOUBLE PRECISION;
ALTER TABLE schedules ADD COLUMN following_at DOUBLE PRECISION;
