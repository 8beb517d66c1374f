-- Up Migration

-- The Idempotency-Key record of the create that made the session (its scope and key hash): an erase deletes it
-- with the session, or a create retried with that key within the record's 24 h replayed the 201 of a session that
-- no longer exists. NULL for a create without a key (and for sessions made before this column). Adding nullable
-- columns rewrites nothing.
ALTER TABLE sessions ADD COLUMN create_idempotency_scope text, ADD COLUMN create_idempotency_key text;

-- Down Migration
ALTER TABLE sessions DROP COLUMN create_idempotency_scope, DROP COLUMN create_idempotency_key;
