INSERT INTO policy_changes (endpoint, settings, changed_at, changed_by) VALUES ($1, $2, $3, $4)
RETURNING id
