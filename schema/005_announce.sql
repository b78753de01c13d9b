-- 005: jobs.announce, set by an enqueuer that publishes the job's `pending`
-- event (etl-api with REDIS_ENABLED). A worker that listens to the channel
-- starts such a job only once it has seen that event there (or once it is
-- too old for the event still to come), so the job's `running` never
-- reaches the channel before its `pending` (lib/jobq.h, jobq_acquire_gated).
-- Jobs added any other way (etlctl, the sqlite3 shell, legacy rows) keep 0
-- and start at once. ADD COLUMN with a constant default rewrites no row.
ALTER TABLE jobs ADD COLUMN announce INTEGER NOT NULL DEFAULT 0;
