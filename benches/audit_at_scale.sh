#!/usr/bin/env bash
# Audit query latency on the PostgreSQL event log at N events (default 20M) against the same queries
# at 1M, in one run: a scratch database each, schema by `syncwarden migrate` (the partitioned log of
# migration 0012), events generated with COPY over 12 months, then every audit query of
# GET /v1/audit/events timed (median of 5 runs, server-side EXPLAIN ANALYZE). Drops the databases.
# Usage: benches/audit_at_scale.sh [ADMIN_URL] [EVENTS] [BIN]   (check free disk first: ~0.6 GB/M)
set -euo pipefail
ADMIN=${1:-postgres://postgres@127.0.0.1:5432/postgres}
BIG=${2:-20000000}
BIN=${3:-target/release/syncwarden}
BASE=${ADMIN%/*}

load() { # db events
    local db=$1 n=$2 url="$BASE/$1"
    psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    SYNCWARDEN_DATABASE__URL="$url" "$BIN" migrate >/dev/null
    # Monthly partitions for the 12 months of generated events (the migration makes the current
    # month and three ahead; a production log grows into its partitions month by month).
    psql "$url" -qAtc "SELECT field_events_ensure_partitions(1761955200000000, 13)" >/dev/null
    local start; start=$(date +%s)
    # One event a field change: 200k records, 7 endpoints, 20 fields, 50k runs, spread evenly over
    # the 12 months before 2026-11-01.
    psql "$url" -qAc "COPY (SELECT 'k-' || g FROM generate_series(1, $n) g) TO STDOUT" |
        psql "$url" -qc "COPY field_event_keys (idempotency_key) FROM STDIN"
    psql "$url" -qAc "COPY (SELECT 'k-' || g, 'run-' || (g % 50000), (ARRAY['accounts','contacts','pricebook','items','quotes','sales_orders','invoices'])[1 + g % 7],
            'crm-' || (g % 200000), 'E' || (g % 200000), 'field_' || (g % 20), '\"old ' || g || '\"', '\"new ' || g || '\"',
            CASE WHEN g % 2 = 0 THEN 'erp' ELSE 'crm' END, CASE WHEN g % 2 = 0 THEN 'crm' ELSE 'erp' END,
            CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'applied' END, NULL, g % 400,
            1761955200000000 + (g::bigint * (31536000000000 / $n)), 1761955200000000 + (g::bigint * (31536000000000 / $n)) + 1000
            FROM generate_series(1, $n) g) TO STDOUT" |
        psql "$url" -qc "COPY field_events (idempotency_key, run_id, endpoint, crm_id, erp_id, field, old_value, new_value, source_system, target_system, outcome, error, latency_ms, occurred_at, recorded_at) FROM STDIN"
    psql "$url" -qc "ANALYZE"
    echo "loaded $n events into $db in $(( $(date +%s) - start )) s; $(psql "$url" -tAc "SELECT pg_size_pretty(pg_database_size('$db'))")" >&2
}

# The queries GET /v1/audit/events builds (select_events.sql plus filters, ORDER BY id LIMIT 100),
# as "name|WITH prefix|FROM|WHERE". By record the API finds the rows through each id index first
# (select_record_events_head.sql); the plain OR form it replaced is timed beside it.
RECORD_CTE="WITH matched AS MATERIALIZED (SELECT * FROM field_events WHERE crm_id = 'crm-4242' UNION ALL SELECT * FROM field_events WHERE erp_id = 'crm-4242' AND (crm_id IS NULL OR crm_id <> 'crm-4242'))"
QUERIES=(
  "record (as the API runs it)|$RECORD_CTE|matched|1 = 1"
  "record + field (as the API runs it)|$RECORD_CTE|matched|field = 'field_2'"
  "record (plain OR, replaced)||field_events|(crm_id = 'crm-4242' OR erp_id = 'crm-4242')"
  "endpoint+field+day||field_events|endpoint = 'items' AND field = 'field_3' AND occurred_at >= 1777593600000000 AND occurred_at < 1777680000000000"
  "run||field_events|run_id = 'run-777'"
  "hour||field_events|occurred_at >= 1777593600000000 AND occurred_at < 1777597200000000"
  "page deep in the log||field_events|id > (SELECT max(id) / 2 FROM field_events)"
)

time_query() { # url with from where -> median ms
    local url=$1 with=$2 from=$3 where=$4 sql
    sql="$with SELECT id, idempotency_key, run_id, endpoint, crm_id, erp_id, field, old_value, new_value, source_system, target_system, outcome, error, latency_ms, occurred_at, recorded_at FROM $from WHERE 1 = 1 AND $where ORDER BY id LIMIT 100"
    for _ in 1 2 3 4 5; do
        psql "$url" -tAc "EXPLAIN (ANALYZE, FORMAT JSON) $sql" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])'
    done | sort -n | sed -n 3p
}

load sw_bench_audit_small 1000000
load sw_bench_audit_big "$BIG"
printf '| query | 1M events (ms) | %sM events (ms) | ratio |\n|---|---|---|---|\n' "$((BIG / 1000000))"
for q in "${QUERIES[@]}"; do
    IFS='|' read -r name with from where <<<"$q"
    small=$(time_query "$BASE/sw_bench_audit_small" "$with" "$from" "$where")
    big=$(time_query "$BASE/sw_bench_audit_big" "$with" "$from" "$where")
    printf '| %s | %.2f | %.2f | %.1fx |\n' "$name" "$small" "$big" "$(python3 -c "print($big / max($small, 0.001))")"
done
psql "$BASE/sw_bench_audit_big" -tAc "SELECT count(*) || ' partitions' FROM pg_inherits WHERE inhparent = 'field_events'::regclass"
for db in sw_bench_audit_small sw_bench_audit_big; do psql "$ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; done
