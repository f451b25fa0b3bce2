-- Moves a schedule's mark to the next slot only if the current one is due (or there is none):
-- a row comes back to the one caller that took the slot, however many ask at once.
INSERT INTO job_marks (job, mark) VALUES ($1, $2)
ON CONFLICT (job) DO UPDATE SET mark = excluded.mark WHERE job_marks.mark <= $3
RETURNING mark
