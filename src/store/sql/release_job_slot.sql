-- The instance that took a schedule's last slot hands the schedule back (it holds more than its
-- share): the next slot stays where it is, and goes to whichever instance takes it when due.
UPDATE job_marks SET holder = NULL WHERE job = $1 AND holder = $2
