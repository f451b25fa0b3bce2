-- The instance that took a schedule's last slot moves its next one to an interval after its run
-- ended, while it still holds the run's lease: a run longer than the interval then does not leave
-- the slot overdue (and, once the lease is released, free) for another to take.
UPDATE job_marks SET mark = $2 WHERE job = $1 AND holder = $3
