SELECT endpoint, crm_id, erp_id, linked_at FROM record_links WHERE endpoint = $1 AND crm_id = $2
