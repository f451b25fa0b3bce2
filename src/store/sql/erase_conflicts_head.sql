UPDATE conflicts
SET base_value = CASE WHEN base_value IS NULL THEN NULL ELSE '[erased]' END,
    crm_value = CASE WHEN crm_value IS NULL THEN NULL ELSE '[erased]' END,
    erp_value = CASE WHEN erp_value IS NULL THEN NULL ELSE '[erased]' END
WHERE 1 = 1
