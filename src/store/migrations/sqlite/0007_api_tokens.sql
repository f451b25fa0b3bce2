-- API tokens: only a hash of each is kept; the token itself is shown once, when it is made.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    token_hash TEXT    NOT NULL UNIQUE,
    created_at INTEGER  NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
);
