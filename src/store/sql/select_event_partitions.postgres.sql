-- The monthly partitions with their bounds, from `FOR VALUES FROM ('lo') TO ('hi')`.
SELECT c.relname::text,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''(-?\d+)''\) TO \(''(-?\d+)''\)'))[1]::bigint,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''(-?\d+)''\) TO \(''(-?\d+)''\)'))[2]::bigint
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = 'field_events'::regclass AND c.relname ~ '^field_events_y\d{4}m\d{2}$'
ORDER BY c.relname
