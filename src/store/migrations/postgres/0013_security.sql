-- Secrets at rest and GDPR erasure.
--
-- secrets: values encrypted with AES-256-GCM under the master key (never stored here); the
-- secret's name is the associated data, so a ciphertext moved to another name does not decrypt.
-- key_id is a fingerprint of the key that sealed it, to name a wrong key plainly.
CREATE TABLE secrets (
    name       TEXT   PRIMARY KEY,
    nonce      BYTEA  NOT NULL,
    ciphertext BYTEA  NOT NULL,
    key_id     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- One row per erasure of a person's data: who asked, why, what it named and what it replaced.
-- It is written first (completed_at empty) in the erasure's own transaction and completed at its
-- end; while such a row exists the event log accepts the one UPDATE below.
CREATE TABLE erasures (
    id             TEXT   PRIMARY KEY,
    requested_by   TEXT   NOT NULL,
    reason         TEXT   NOT NULL,
    subject        TEXT   NOT NULL,
    fields         TEXT   NOT NULL,
    events_erased  BIGINT NOT NULL DEFAULT 0,
    states_erased  BIGINT NOT NULL DEFAULT 0,
    started_at     BIGINT NOT NULL,
    completed_at   BIGINT
);

-- The event log stays append-only with one exception, an erasure: a transaction that set
-- `syncwarden.erasure` (SET LOCAL, so it ends with the transaction) to the id of an uncompleted
-- erasures row it wrote may UPDATE old_value and new_value to the tombstone and nothing else.
-- Other sessions cannot see that row before it commits, and it is completed in the same
-- transaction. DELETE stays refused.
CREATE OR REPLACE FUNCTION field_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND EXISTS (
            SELECT 1 FROM erasures
            WHERE id = current_setting('syncwarden.erasure', true) AND completed_at IS NULL)
        AND (NEW.id, NEW.idempotency_key, NEW.run_id, NEW.endpoint, NEW.crm_id, NEW.erp_id,
             NEW.field, NEW.source_system, NEW.target_system, NEW.outcome, NEW.error,
             NEW.latency_ms, NEW.occurred_at, NEW.recorded_at)
            IS NOT DISTINCT FROM
            (OLD.id, OLD.idempotency_key, OLD.run_id, OLD.endpoint, OLD.crm_id, OLD.erp_id,
             OLD.field, OLD.source_system, OLD.target_system, OLD.outcome, OLD.error,
             OLD.latency_ms, OLD.occurred_at, OLD.recorded_at)
        AND (NEW.old_value IS NOT DISTINCT FROM OLD.old_value OR NEW.old_value = '"[erased]"')
        AND (NEW.new_value IS NOT DISTINCT FROM OLD.new_value OR NEW.new_value = '"[erased]"')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'field_events is append-only';
END;
$$;
