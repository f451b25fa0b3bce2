SELECT id, kind, severity, fingerprint, title, evidence, state, started_at, detected_at,
       last_seen_at, occurrences, acknowledged_at, resolved_at
FROM findings
WHERE $1 IS NULL OR state = $1
ORDER BY detected_at DESC, id DESC
