-- Merge and undo jobs of one endpoint's proposals, with their plans (before-images).
SELECT id, plan FROM merge_jobs
WHERE proposal_id IN (SELECT id FROM dedup_proposals WHERE endpoint = $1)
ORDER BY id
