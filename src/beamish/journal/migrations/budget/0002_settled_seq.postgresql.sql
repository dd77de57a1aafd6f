-- A settled reservation keeps counting (at the real cost) until the journal's spend row for its
-- step exists, so no moment passes where the money is counted nowhere.
ALTER TABLE budget_reservations ADD COLUMN seq BIGINT;
