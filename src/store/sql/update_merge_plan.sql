UPDATE merge_jobs SET plan = $2 WHERE id = $1
