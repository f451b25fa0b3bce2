INSERT INTO findings (kind, severity, fingerprint, title, evidence, state, started_at, detected_at,
                      last_seen_at, occurrences)
VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, $7, 1)
ON CONFLICT (fingerprint) DO UPDATE SET
    kind = excluded.kind,
    severity = excluded.severity,
    title = excluded.title,
    evidence = excluded.evidence,
    last_seen_at = excluded.last_seen_at,
    -- A resolved finding that recurs is a new incident under the same fingerprint: reopened, with
    -- its own start and detection times; an open or acknowledged one keeps its own.
    started_at = CASE WHEN findings.state = 'resolved' THEN excluded.started_at ELSE findings.started_at END,
    detected_at = CASE WHEN findings.state = 'resolved' THEN excluded.detected_at ELSE findings.detected_at END,
    occurrences = CASE WHEN findings.state = 'resolved' THEN 1 ELSE findings.occurrences + 1 END,
    acknowledged_at = CASE WHEN findings.state = 'resolved' THEN NULL ELSE findings.acknowledged_at END,
    resolved_at = NULL,
    state = CASE WHEN findings.state = 'resolved' THEN 'open' ELSE findings.state END
RETURNING id, kind, severity, fingerprint, title, evidence, state, started_at, detected_at,
          last_seen_at, occurrences, acknowledged_at, resolved_at
