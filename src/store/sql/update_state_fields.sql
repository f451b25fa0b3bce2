UPDATE record_states SET fields = $3 WHERE endpoint = $1 AND record_key = $2
