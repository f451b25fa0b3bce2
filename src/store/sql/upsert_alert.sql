INSERT INTO alerts (fingerprint, finding_id, labels, annotations, status, starts_at, ends_at,
                    updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (fingerprint) DO UPDATE SET
    finding_id = excluded.finding_id,
    labels = excluded.labels,
    annotations = excluded.annotations,
    status = excluded.status,
    starts_at = excluded.starts_at,
    ends_at = excluded.ends_at,
    updated_at = excluded.updated_at
