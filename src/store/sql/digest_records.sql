-- Distinct records written (applied) and merged in [$1, $2), per endpoint and outcome.
SELECT endpoint, outcome, COUNT(DISTINCT COALESCE(crm_id, erp_id))
FROM field_events
WHERE occurred_at >= $1 AND occurred_at < $2 AND outcome IN ('applied', 'merged')
GROUP BY endpoint, outcome
