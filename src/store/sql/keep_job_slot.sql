-- The instance that took a schedule's last slot moves its next one to an interval after its run
-- ended: a run longer than the interval then does not leave the slot overdue for another to take.
UPDATE job_marks SET mark = $2 WHERE job = $1 AND holder = $3
