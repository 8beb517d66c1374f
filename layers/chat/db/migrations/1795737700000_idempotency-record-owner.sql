-- Up Migration

-- The session a create's Idempotency-Key record made: an erase deletes that record with the session, or a create
-- retried with the key within its 24 h replayed the 201 of a session that no longer existed. Set by the statement
-- that creates the session; cleared when another request takes the key over (the record is then not that
-- session's). NULL for posts' records (an erase finds those by scope) and for records written by the previous
-- release. Indexed only where set: one index entry per keyed create, none per post.
ALTER TABLE idempotency_records ADD COLUMN session_id uuid;
CREATE INDEX idempotency_records_session_idx ON idempotency_records (session_id) WHERE session_id IS NOT NULL;

-- Down Migration
DROP INDEX idempotency_records_session_idx;
ALTER TABLE idempotency_records DROP COLUMN session_id;
