-- Keys first: a key already in field_event_keys (or being inserted by a concurrent batch, which
-- this waits for) is a replay, and its row is not inserted again.
WITH u AS (
    SELECT *
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::int8[], $14::int8[])
         WITH ORDINALITY AS u(k, r, e, c, p, f, o, n, s, t, oc, er, l, oa, ord)
), fresh AS (
    INSERT INTO field_event_keys (idempotency_key)
    SELECT k FROM u
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key
)
INSERT INTO field_events (idempotency_key, run_id, endpoint, crm_id, erp_id, field, old_value,
                          new_value, source_system, target_system, outcome, error, latency_ms,
                          occurred_at, recorded_at)
SELECT k, r, e, c, p, f, o, n, s, t, oc, er, l, oa, $15
FROM u JOIN fresh ON fresh.idempotency_key = u.k
ORDER BY u.ord
