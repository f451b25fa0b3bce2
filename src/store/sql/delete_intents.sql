DELETE FROM sync_intents WHERE endpoint = $1
