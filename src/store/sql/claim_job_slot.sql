-- Takes a schedule's slot when it is due, moving the mark to the next one: a row comes back to
-- the one caller that took it, however many ask at once. The instance that took the last slot
-- takes the next as soon as it is due; another only once it was due before $5 (now less a grace):
-- the last one has stopped taking its slots; and never while another instance holds the lease of
-- the work the slot runs ($6): a run longer than the interval is not a missed slot.
INSERT INTO job_marks (job, mark, holder) VALUES ($1, $2, $3)
ON CONFLICT (job) DO UPDATE SET mark = excluded.mark, holder = excluded.holder
WHERE job_marks.mark <= $4
  AND (job_marks.holder IS NULL OR job_marks.holder = excluded.holder OR job_marks.mark <= $5)
  AND NOT EXISTS (
      SELECT 1 FROM job_leases
      WHERE job_leases.job = $6 AND job_leases.holder <> $3
        AND job_leases.expires_at > $4
  )
RETURNING mark
