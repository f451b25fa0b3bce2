SELECT last_id FROM rollup_progress WHERE job = $1
