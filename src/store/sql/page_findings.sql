-- A keyset page of findings, newest first: by id, which a finding keeps for life (a reopened
-- finding changes its detection time), so a walk through the pages sees each row once.
SELECT id, kind, severity, fingerprint, title, evidence, state, started_at, detected_at,
       last_seen_at, occurrences, acknowledged_at, resolved_at
FROM findings
WHERE id < $1
  AND ($2 IS NULL OR state = $2)
  AND ($3 IS NULL OR kind = $3)
  AND ($4 IS NULL OR severity = $4)
ORDER BY id DESC
LIMIT $5
