SELECT endpoint, record_key, crm_id, erp_id, fields, synced_at
FROM record_states
WHERE 1 = 1
