-- The one UPDATE the event log accepts, inside an erasure (migration 0013): values become the
-- tombstone, nothing else changes. Rows already erased are left alone so the count is honest.
UPDATE field_events
SET old_value = CASE WHEN old_value IS NULL THEN NULL ELSE '"[erased]"' END,
    new_value = CASE WHEN new_value IS NULL THEN NULL ELSE '"[erased]"' END
WHERE (COALESCE(old_value, '"[erased]"') <> '"[erased]"'
       OR COALESCE(new_value, '"[erased]"') <> '"[erased]"')
