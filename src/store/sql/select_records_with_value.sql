-- Records (by their id on either side) whose `field` held a value, compared case-blind.
SELECT crm_id FROM field_events
WHERE endpoint = $1 AND field = $2 AND crm_id IS NOT NULL
  AND (lower(old_value) = lower($3) OR lower(new_value) = lower($3))
UNION
SELECT erp_id FROM field_events
WHERE endpoint = $1 AND field = $2 AND erp_id IS NOT NULL
  AND (lower(old_value) = lower($3) OR lower(new_value) = lower($3))
