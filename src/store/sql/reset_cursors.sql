DELETE FROM sync_cursors;
