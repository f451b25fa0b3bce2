INSERT INTO record_states (endpoint, record_key, crm_id, erp_id, fields, synced_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (endpoint, record_key) DO UPDATE
SET crm_id = excluded.crm_id, erp_id = excluded.erp_id, fields = excluded.fields,
    synced_at = excluded.synced_at
