INSERT INTO job_marks (job, mark) VALUES ($1, $2)
ON CONFLICT (job) DO UPDATE SET mark = excluded.mark WHERE job_marks.mark < excluded.mark
