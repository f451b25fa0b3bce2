SELECT job FROM job_marks WHERE holder = $1 AND job LIKE $2
