INSERT INTO record_states (endpoint, record_key, crm_id, erp_id, fields, synced_at)
