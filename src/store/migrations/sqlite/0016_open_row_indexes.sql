-- Every query on open conflicts and dead letters asks for `resolved_at IS NULL ORDER BY id`
-- (the review pages and the re-drive), so index exactly those rows: the pages stay fast however
-- many resolved rows the audit history keeps. The old (endpoint, resolved_at) indexes served none
-- of those queries.
DROP INDEX dead_letters_open;
DROP INDEX conflicts_open;
CREATE INDEX dead_letters_open ON dead_letters (id) WHERE resolved_at IS NULL;
CREATE INDEX conflicts_open ON conflicts (id) WHERE resolved_at IS NULL;
