#!/usr/bin/env bash
# What SQLite itself can do with syncwarden's event-log schema: 1,000,000 rows shaped like the ingest
# benchmark's (random idempotency keys, records spread over 200k accounts) inserted by the engine
# from SQL, in transactions of 10,000 rows, WAL + synchronous=NORMAL, no driver and no Rust at all.
# Compare its rows/s with `syncwarden bench ingest --events 1000000 --json` (events_per_sec).
# Needs the sqlite3 command-line shell (Debian package sqlite3).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
    echo "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;"
    for b in $(seq 0 99); do
        cat <<SQL
BEGIN;
WITH RECURSIVE c(i) AS (SELECT $((b * 10000)) UNION ALL SELECT i + 1 FROM c WHERE i < $((b * 10000 + 9999)))
INSERT INTO field_events (idempotency_key, run_id, endpoint, crm_id, erp_id, field, old_value, new_value,
                          source_system, target_system, outcome, error, latency_ms, occurred_at, recorded_at)
SELECT printf('%016x%016x', abs(random()), i), 'run-' || (i / 50000), 'items',
       CAST(10000000 + abs(random()) % 200000 AS TEXT), printf('C%06d', abs(random()) % 200000), 'price',
       '"value 1"', '"value 2"', 'erp', 'crm', 'applied', NULL, 40, 1700000000000000 + i * 600000,
       1700000000000000
FROM c;
COMMIT;
SQL
    done
} > "$work/batches.sql"
sqlite3 "$work/t.db" < src/store/migrations/sqlite/0001_event_log.sql
start=$(date +%s.%N)
sqlite3 "$work/t.db" < "$work/batches.sql" > /dev/null
end=$(date +%s.%N)
echo "{\"engine\":\"sqlite3 $(sqlite3 --version | cut -d' ' -f1)\",\"rows\":1000000,\"seconds\":$(echo "$end - $start" | bc),\"rows_per_sec\":$(echo "1000000 / ($end - $start)" | bc)}"
