-- 002: the slot pool (worker_slot, locked_at and the index API.md names),
-- the columns the C backend keeps per job, log lines as rows, the worker
-- registry and the failed-login counter. Legacy rows are kept and made
-- readable: times get their milliseconds and Z, sistemas come from params.
-- The legacy text logs become job_logs rows in the C part of this step
-- (lib/migrate.c).
ALTER TABLE jobs ADD COLUMN worker_slot INTEGER;
ALTER TABLE jobs ADD COLUMN locked_at TEXT;
CREATE INDEX idx_jobs_status_slot ON jobs (status, worker_slot);

ALTER TABLE jobs ADD COLUMN sistemas TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN exit_code INTEGER;
ALTER TABLE jobs ADD COLUMN created_by TEXT;
ALTER TABLE jobs ADD COLUMN worker_id INTEGER;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
CREATE INDEX idx_jobs_fifo ON jobs (status, created_at, id);
CREATE INDEX idx_jobs_created ON jobs (created_at, id);
CREATE UNIQUE INDEX idx_jobs_idem ON jobs (created_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Which sistemas a job extracts: the exclusivity check joins on it.
CREATE TABLE job_sistemas (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    sistema_id TEXT NOT NULL,
    PRIMARY KEY (job_id, sistema_id)
) WITHOUT ROWID;
CREATE INDEX idx_job_sistemas_sistema ON job_sistemas (sistema_id, job_id);

CREATE TABLE job_logs (
    job_id INTEGER NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    level TEXT NOT NULL,
    sistema TEXT NOT NULL,
    mensagem TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

CREATE TABLE workers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    boot_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    slots INTEGER NOT NULL,
    events_published INTEGER NOT NULL DEFAULT 0,
    events_dropped INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE login_failures (
    username TEXT NOT NULL,
    ts INTEGER NOT NULL -- ms since the epoch
);
CREATE INDEX idx_login_failures ON login_failures (username, ts);

-- Legacy times were "YYYY-MM-DDTHH:MM:SS" (UTC, no zone): give them ms and Z.
UPDATE jobs SET created_at = created_at || '.000Z' WHERE length(created_at) = 19;
UPDATE jobs SET started_at = started_at || '.000Z' WHERE length(started_at) = 19;
UPDATE jobs SET finished_at = finished_at || '.000Z' WHERE length(finished_at) = 19;
UPDATE sistemas SET ultima_execucao = ultima_execucao || '.000Z'
    WHERE length(ultima_execucao) = 19;
UPDATE users SET created_at = created_at || '.000Z' WHERE length(created_at) = 19;

-- Legacy jobs named their sistemas inside params.
UPDATE jobs SET sistemas = json_extract(params, '$.sistemas')
    WHERE json_valid(params) AND json_type(params, '$.sistemas') = 'array';
INSERT OR IGNORE INTO job_sistemas (job_id, sistema_id)
    SELECT jobs.id, j.value FROM jobs, json_each(jobs.sistemas) AS j
    WHERE json_valid(jobs.sistemas) AND j.type = 'text';
