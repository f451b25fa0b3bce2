-- Alerting: alerts made from findings, the notification outbox (stored before sent), every
-- delivery attempt, the notification log (what each receiver last heard about each group) and
-- silences. Everything that decides "send or not" lives here so a restart neither loses nor
-- repeats a notification, and several instances share one view. Timestamps are microseconds since
-- the epoch; labels, annotations, matchers and payloads are JSON text.

CREATE TABLE alerts (
    fingerprint TEXT    PRIMARY KEY,
    finding_id  INTEGER,
    labels      TEXT    NOT NULL,
    annotations TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER,
    updated_at  INTEGER NOT NULL,
    -- Why it is muted ("silence 3", "inhibited by <fingerprint>"), NULL when it is not.
    muted_by    TEXT
);

CREATE INDEX alerts_by_status ON alerts (status, ends_at);

CREATE TABLE notification_outbox (
    id              INTEGER PRIMARY KEY,
    receiver        TEXT    NOT NULL,
    group_key       TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER,
    last_error      TEXT,
    -- The worker sending it and until when its claim holds: a claim left by a worker that died
    -- expires and the row is taken again.
    claimed_by      TEXT,
    claimed_until   INTEGER
);

CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);

CREATE TABLE notification_attempts (
    id           INTEGER PRIMARY KEY,
    outbox_id    INTEGER NOT NULL REFERENCES notification_outbox (id),
    receiver     TEXT    NOT NULL,
    attempted_at INTEGER NOT NULL,
    outcome      TEXT    NOT NULL,
    error        TEXT,
    latency_ms   INTEGER NOT NULL
);

CREATE INDEX notification_attempts_by_receiver ON notification_attempts (receiver, attempted_at);

CREATE TABLE notification_log (
    receiver  TEXT    NOT NULL,
    group_key TEXT    NOT NULL,
    -- Hash of the firing and resolved alerts last notified, and those alerts' fingerprints.
    hash      TEXT    NOT NULL,
    firing    TEXT    NOT NULL,
    resolved  TEXT    NOT NULL,
    sent_at   INTEGER NOT NULL,
    PRIMARY KEY (receiver, group_key)
);

CREATE TABLE silences (
    id         INTEGER PRIMARY KEY,
    matchers   TEXT    NOT NULL,
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    author     TEXT    NOT NULL,
    comment    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
