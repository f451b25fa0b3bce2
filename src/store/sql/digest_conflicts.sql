-- Conflicts opened and conflicts resolved in [$1, $2).
SELECT CAST(COALESCE(SUM(CASE WHEN opened_at >= $1 AND opened_at < $2 THEN 1 ELSE 0 END), 0) AS BIGINT),
       CAST(COALESCE(SUM(CASE WHEN resolved_at >= $1 AND resolved_at < $2 THEN 1 ELSE 0 END), 0) AS BIGINT)
FROM conflicts
