-- Leases on scheduled jobs (each endpoint's sync...): one instance holds a job at a time, and
-- another takes it over once the holder stops renewing it (a crashed instance).
CREATE TABLE job_leases (
    job        TEXT    PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at BIGINT  NOT NULL
);
