 ON CONFLICT (endpoint, record_key) DO UPDATE
SET crm_id = excluded.crm_id, erp_id = excluded.erp_id, fields = excluded.fields,
    synced_at = excluded.synced_at
