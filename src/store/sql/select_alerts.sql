SELECT fingerprint, finding_id, labels, annotations, status, starts_at, ends_at, updated_at, muted_by
FROM alerts
WHERE status = 'firing' OR ends_at >= $1
ORDER BY fingerprint
