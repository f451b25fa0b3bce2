UPDATE alerts SET annotations = $2 WHERE fingerprint = $1 AND updated_at = $3
