-- Weekly digest sends: one row per ISO week, claimed by the instance that sends it, so a restart
-- or a second instance never sends a week twice. A claim whose holder died (sent_at still NULL
-- after claimed_until) can be taken over. Timestamps are microseconds since the epoch.

CREATE TABLE digest_sends (
    week          TEXT    PRIMARY KEY,
    holder        TEXT    NOT NULL,
    claimed_until BIGINT  NOT NULL,
    attempts      BIGINT  NOT NULL,
    sent_at       BIGINT,
    last_error    TEXT
);
