UPDATE findings SET state = 'acknowledged', acknowledged_at = $2
WHERE id = $1 AND state = 'open'
RETURNING id, kind, severity, fingerprint, title, evidence, state, started_at, detected_at,
          last_seen_at, occurrences, acknowledged_at, resolved_at
