UPDATE erasures
SET completed_at = $2, events_erased = $3, states_erased = $4
WHERE id = $1
