-- Write latencies (applied and failed writes, as the monitor counts them) of each of seven days
-- ($1..$8 are the days' bounds), as a histogram: exact percentiles without fetching every row.
SELECT CAST(CASE WHEN occurred_at < $2 THEN 0 WHEN occurred_at < $3 THEN 1 WHEN occurred_at < $4 THEN 2 WHEN occurred_at < $5 THEN 3
            WHEN occurred_at < $6 THEN 4 WHEN occurred_at < $7 THEN 5 ELSE 6 END AS BIGINT) AS day, latency_ms, COUNT(*)
FROM field_events
WHERE occurred_at >= $1 AND occurred_at < $8
  AND outcome IN ('applied', 'failed') AND latency_ms IS NOT NULL
GROUP BY 1, 2
