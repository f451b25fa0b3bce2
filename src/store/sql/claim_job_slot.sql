-- Takes a schedule's slot when it is due, moving the mark to the next one: a row comes back with
-- the caller as holder to the one caller that took it, however many ask at once. The instance
-- that took the last slot takes the next as soon as it is due; another only once it was due
-- before $5 (now less a grace): the last one has stopped taking its slots; and never while
-- another instance holds the lease of the work the slot runs ($6): a run longer than the
-- interval is not a missed slot.
-- Balance (issue 8): a slot that is not the caller's own (never taken, handed back, or overdue)
-- is taken only while the caller holds fewer than its share of the $7 endpoints,
-- ceil($7 / live instances): holding c others, c < ceil($7 / n) is c * n < $7. The slots it
-- holds are the schedules matching $8 whose holder it is; the live instances are the unexpired
-- leases matching $9 (their heartbeats), at least itself. The counts are read in this statement
-- while another claim may commit beside it (an instance's own claims go one at a time): a stale
-- count can only cost balance, never run a slot twice, which the row's update and the lease
-- decide. So that no endpoint waits for ever when every instance holds its share (instances
-- configured with different endpoints), a slot due before $10 is anyone's whatever they hold,
-- and a first slot refused for the share is stored free and due, to become so.
INSERT INTO job_marks (job, mark, holder)
SELECT $1, CASE WHEN claim.ok THEN $2 ELSE $4 END, CASE WHEN claim.ok THEN $3 END
FROM (
    SELECT EXISTS (SELECT 1 FROM job_marks WHERE job = $1 AND (holder = $3 OR mark <= $10))
        OR (SELECT COUNT(*) FROM job_marks WHERE holder = $3 AND job LIKE $8 AND job <> $1)
           * (SELECT CASE WHEN COUNT(*) = 0 THEN 1 ELSE COUNT(*) END FROM job_leases
              WHERE job LIKE $9 AND expires_at > $4)
           < $7 AS ok
) AS claim
WHERE true
ON CONFLICT (job) DO UPDATE SET mark = excluded.mark, holder = excluded.holder
WHERE excluded.holder IS NOT NULL
  AND job_marks.mark <= $4
  AND (job_marks.holder IS NULL OR job_marks.holder = excluded.holder OR job_marks.mark <= $5)
  AND NOT EXISTS (
      SELECT 1 FROM job_leases
      WHERE job_leases.job = $6 AND job_leases.holder <> $3
        AND job_leases.expires_at > $4
  )
RETURNING holder
