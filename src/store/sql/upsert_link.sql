INSERT INTO record_links (endpoint, crm_id, erp_id, linked_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (endpoint, crm_id) DO UPDATE SET erp_id = excluded.erp_id, linked_at = excluded.linked_at
