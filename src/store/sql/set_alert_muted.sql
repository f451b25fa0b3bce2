UPDATE alerts SET muted_by = $2 WHERE fingerprint = $1
