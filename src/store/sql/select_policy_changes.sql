SELECT id, endpoint, settings, changed_at, changed_by FROM policy_changes ORDER BY id
