-- 003: fewer pages written per job. Every index on jobs, and AUTOINCREMENT's
-- row in sqlite_sequence, is one more page (one more WAL frame: two writes,
-- 4 KiB) in each enqueue, acquire and finish; bench/queue counted 7 frames
-- per enqueue before this step and 3 after it (the row, idx_jobs_status_slot,
-- idx_jobs_created).
-- - job_sistemas duplicated jobs.sistemas so that the exclusivity test
--   could use an index. That test walks from the running jobs (at most
--   ETL_MAX_CONCURRENT_JOBS rows) and reads their sistemas with json_each,
--   which is as cheap and keeps one copy.
-- - idx_jobs_fifo: the queue's order is the order of arrival, which is id
--   order (ids are given inside the write lock, so a clock step cannot
--   reorder them). A pending job has no slot, so idx_jobs_status_slot
--   (status, worker_slot) already holds the pending jobs in id order:
--   "status = 'pending' AND worker_slot IS NULL ORDER BY id" reads it so.
--   (The list stays newest first by created_at, the time it shows, through
--   idx_jobs_created: legacy rows need not follow id order.)
-- - AUTOINCREMENT: a new id is max(id) + 1, and ids are still never reused
--   because nothing deletes the newest job (jobq_prune keeps it). A legacy
--   database whose newest jobs were deleted by hand before this step could
--   see those ids again; their rows and logs are gone by then.
-- The table is rebuilt (SQLite cannot drop AUTOINCREMENT in place) with
-- every column and row; lib/migrate.c runs the steps with foreign keys off,
-- so dropping the old table does not cascade into job_logs, and checks
-- them before committing.
CREATE TABLE jobs_003 (
    id INTEGER PRIMARY KEY,
    tipo TEXT NOT NULL,
    params TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    error_message TEXT,
    logs TEXT DEFAULT '',
    worker_slot INTEGER,
    locked_at TEXT,
    -- read with json_each by the queue's SQL: one malformed row would make
    -- every acquire fail, so no program (nor the sqlite3 shell) can store one
    sistemas TEXT NOT NULL DEFAULT '[]'
        CHECK (json_valid(sistemas) AND json_type(sistemas) = 'array'),
    exit_code INTEGER,
    created_by TEXT,
    worker_id INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT
);
INSERT INTO jobs_003 (id, tipo, params, status, created_at, started_at, finished_at,
        error_message, logs, worker_slot, locked_at, sistemas, exit_code, created_by,
        worker_id, cancel_requested, idempotency_key)
    SELECT id, tipo, params, status, created_at, started_at, finished_at,
        error_message, logs,
        -- the invariant the FIFO read relies on: a pending job has no slot
        CASE WHEN status = 'pending' THEN NULL ELSE worker_slot END,
        locked_at,
        CASE WHEN json_valid(sistemas) AND json_type(sistemas) = 'array'
            THEN sistemas ELSE '[]' END,
        exit_code, created_by, worker_id, cancel_requested, idempotency_key
    FROM jobs;
DROP TABLE job_sistemas;
DROP TABLE jobs;
ALTER TABLE jobs_003 RENAME TO jobs;
CREATE INDEX idx_jobs_status_slot ON jobs (status, worker_slot);
CREATE INDEX idx_jobs_created ON jobs (created_at, id);
-- Listing the rare finished states newest first (?status=error): without it
-- that walks the whole history (110 ms at 200k jobs). Only a job that ends
-- in error or cancelled writes to it.
CREATE INDEX idx_jobs_failed ON jobs (status, created_at, id)
    WHERE status IN ('error', 'cancelled');
CREATE UNIQUE INDEX idx_jobs_idem ON jobs (created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DELETE FROM sqlite_sequence WHERE name = 'jobs';
