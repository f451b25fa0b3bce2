SELECT id, at, system, endpoint, attempted, succeeded, latencies
FROM api_calls
WHERE at >= $1 AND at < $2
ORDER BY id
