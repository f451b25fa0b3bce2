INSERT INTO field_events (idempotency_key, run_id, endpoint, crm_id, erp_id, field, old_value,
                          new_value, source_system, target_system, outcome, error, latency_ms,
                          occurred_at, recorded_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
