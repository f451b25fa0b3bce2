-- The instance that took a schedule's last slot: it keeps taking the slots while it lives, so an
-- endpoint's runs stay on one instance instead of alternating between them (issue 8).
ALTER TABLE job_marks ADD COLUMN holder TEXT;
