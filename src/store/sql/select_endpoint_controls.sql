SELECT endpoint, paused, dry_run, changed_at, changed_by FROM endpoint_controls ORDER BY endpoint
