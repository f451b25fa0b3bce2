UPDATE alerts SET annotations = $2 WHERE fingerprint = $1
