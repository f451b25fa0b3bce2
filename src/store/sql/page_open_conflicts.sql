-- A keyset page of the conflicts held for a person, oldest first.
SELECT id, endpoint, record_key, field, base_value, crm_value, erp_value, opened_at, resolved_at,
       resolution
FROM conflicts
WHERE id > $1 AND resolved_at IS NULL AND ($2 IS NULL OR endpoint = $2)
ORDER BY id
LIMIT $3
