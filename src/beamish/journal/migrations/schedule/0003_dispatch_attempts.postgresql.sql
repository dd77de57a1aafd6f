-- How many times a fired tick was handed out for dispatch: re-dispatch is bounded, then the run is
-- parked for attention instead of being retried forever.
ALTER TABLE schedule_fires ADD COLUMN attempts BIGINT NOT NULL DEFAULT 1;
