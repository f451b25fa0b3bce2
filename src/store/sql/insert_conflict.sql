INSERT INTO conflicts (endpoint, record_key, field, base_value, crm_value, erp_value, opened_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
