DELETE FROM record_states WHERE endpoint = $1 AND record_key = $2
