-- Ownership and conflict rules changed at run time: every change kept with who and when; the
-- newest row of an endpoint replaces the configured rules of that endpoint as a whole.
CREATE TABLE policy_changes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint   TEXT    NOT NULL,
    settings   TEXT    NOT NULL,
    changed_at INTEGER  NOT NULL,
    changed_by TEXT    NOT NULL
);

CREATE INDEX policy_changes_endpoint ON policy_changes (endpoint, id);
