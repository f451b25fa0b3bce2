-- The values an erasure is about to replace in the event log, to find them again in free text.
SELECT old_value, new_value FROM field_events WHERE 1 = 1
