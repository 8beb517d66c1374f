-- Up Migration

-- The messages a post's Idempotency-Key record replays: an edit or delete of one of them withdraws the record's
-- stored response (a replay would hand back the text the user deleted or replaced). NULL for creates' records
-- and for records written before this release (they expire within IDEMPOTENCY_TTL_SECONDS). No index: an edit
-- finds its session's post records by scope, the primary key's prefix. A column without a default is added
-- without rewriting the table.
ALTER TABLE idempotency_records ADD COLUMN message_ids uuid[];

-- Down Migration
ALTER TABLE idempotency_records DROP COLUMN message_ids;
