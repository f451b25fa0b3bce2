SELECT id, at, system, endpoint, attempted, succeeded, latencies
FROM api_calls
WHERE id > $1
ORDER BY id
