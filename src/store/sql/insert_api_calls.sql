INSERT INTO api_calls (at, system, endpoint, attempted, succeeded, latencies)
VALUES ($1, $2, $3, $4, $5, $6)
