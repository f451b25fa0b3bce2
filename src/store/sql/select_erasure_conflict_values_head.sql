-- The values an erasure is about to replace in conflicts, to find them again in free text.
SELECT base_value, crm_value, erp_value FROM conflicts WHERE 1 = 1
