-- 004: the number of jobs in each status, kept by triggers. The job list
-- answers {"items": [...], "total": N} on every page, and /api/metrics
-- gives the count per status: with count(*) both walked a whole index,
-- which grows with history (at 80k jobs, 820 page reads per list request,
-- more than the default page cache holds, so every request read them all
-- again: 667 lists/s). Now each reads a row or five.
-- The triggers make every change to jobs keep the counts, whoever makes it
-- (the programs, etlctl, the sqlite3 shell); sqlite3_changes() does not
-- count what triggers do, so the programs' checks are unchanged. The cost
-- is one more page (this table's only one) in each transaction that adds,
-- removes or changes the status of a job.
-- A future step that rebuilds jobs drops these triggers with it and must
-- create them again.
CREATE TABLE job_counts (
    status TEXT PRIMARY KEY,
    n INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO job_counts (status, n)
    SELECT status, count(*) FROM jobs GROUP BY status;
CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO job_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER job_counts_update AFTER UPDATE OF status ON jobs
    WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO job_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
