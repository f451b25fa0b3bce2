-- How far a job that instances take turns at has got (the live monitor: the end of the last
-- minute whose findings are recorded), so the instance that takes it over goes on from there.
CREATE TABLE job_marks (
    job  TEXT    PRIMARY KEY,
    mark INTEGER NOT NULL
);
