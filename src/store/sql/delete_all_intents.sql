DELETE FROM sync_intents
