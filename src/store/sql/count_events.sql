SELECT COUNT(*) FROM field_events
