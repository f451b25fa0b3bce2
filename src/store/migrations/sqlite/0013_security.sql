-- Secrets at rest and GDPR erasure.
--
-- secrets: values encrypted with AES-256-GCM under the master key (never stored here); the
-- secret's name is the associated data, so a ciphertext moved to another name does not decrypt.
-- key_id is a fingerprint of the key that sealed it, to name a wrong key plainly.
CREATE TABLE secrets (
    name       TEXT    PRIMARY KEY,
    nonce      BLOB    NOT NULL,
    ciphertext BLOB    NOT NULL,
    key_id     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One row per erasure of a person's data: who asked, why, what it named and what it replaced.
-- It is written first (completed_at empty) in the erasure's own transaction and completed at its
-- end; while such a row exists the event log accepts the one UPDATE below.
CREATE TABLE erasures (
    id             TEXT    PRIMARY KEY,
    requested_by   TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    subject        TEXT    NOT NULL,
    fields         TEXT    NOT NULL,
    events_erased  INTEGER NOT NULL DEFAULT 0,
    states_erased  INTEGER NOT NULL DEFAULT 0,
    started_at     INTEGER NOT NULL,
    completed_at   INTEGER
);

-- The event log stays append-only with one exception, an erasure: inside the transaction that
-- holds an uncompleted erasures row (SQLite has one writer, so no other transaction can see or use
-- it), an UPDATE may replace old_value and new_value with the tombstone and change nothing else.
-- DELETE stays refused.
DROP TRIGGER field_events_no_update;

CREATE TRIGGER field_events_no_update BEFORE UPDATE ON field_events
WHEN NOT (
    EXISTS (SELECT 1 FROM erasures WHERE completed_at IS NULL)
    AND NEW.id IS OLD.id
    AND NEW.idempotency_key IS OLD.idempotency_key
    AND NEW.run_id IS OLD.run_id
    AND NEW.endpoint IS OLD.endpoint
    AND NEW.crm_id IS OLD.crm_id
    AND NEW.erp_id IS OLD.erp_id
    AND NEW.field IS OLD.field
    AND NEW.source_system IS OLD.source_system
    AND NEW.target_system IS OLD.target_system
    AND NEW.outcome IS OLD.outcome
    AND NEW.error IS OLD.error
    AND NEW.latency_ms IS OLD.latency_ms
    AND NEW.occurred_at IS OLD.occurred_at
    AND NEW.recorded_at IS OLD.recorded_at
    AND (NEW.old_value IS OLD.old_value OR NEW.old_value = '"[erased]"')
    AND (NEW.new_value IS OLD.new_value OR NEW.new_value = '"[erased]"')
)
BEGIN
    SELECT RAISE(ABORT, 'field_events is append-only');
END;
