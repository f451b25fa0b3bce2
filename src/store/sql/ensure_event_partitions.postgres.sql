SELECT field_events_ensure_partitions($1, $2)
