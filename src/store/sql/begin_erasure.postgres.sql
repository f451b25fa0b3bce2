-- Names the erasure this transaction carries out, for the event log's trigger (see 0013).
SELECT set_config('syncwarden.erasure', $1, true)
