SELECT endpoint, crm_id, erp_id, linked_at FROM record_links WHERE endpoint = $1 AND erp_id = $2
