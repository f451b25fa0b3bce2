-- API calls of the sync runs started in each of seven days ($1..$8 are the days' bounds).
SELECT CAST(CASE WHEN started_at < $2 THEN 0 WHEN started_at < $3 THEN 1 WHEN started_at < $4 THEN 2 WHEN started_at < $5 THEN 3
            WHEN started_at < $6 THEN 4 WHEN started_at < $7 THEN 5 ELSE 6 END AS BIGINT) AS day,
       CAST(SUM(api_calls_ok) AS BIGINT), CAST(SUM(api_calls_failed) AS BIGINT)
FROM sync_runs
WHERE started_at >= $1 AND started_at < $8
GROUP BY 1
