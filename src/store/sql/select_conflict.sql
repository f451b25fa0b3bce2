SELECT id, endpoint, record_key, field, base_value, crm_value, erp_value, opened_at, resolved_at,
       resolution
FROM conflicts
WHERE id = $1
