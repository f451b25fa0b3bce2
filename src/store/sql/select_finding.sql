SELECT id, kind, severity, fingerprint, title, evidence, state, started_at, detected_at,
       last_seen_at, occurrences, acknowledged_at, resolved_at
FROM findings
WHERE id = $1
