SELECT mark FROM job_marks WHERE job = $1
