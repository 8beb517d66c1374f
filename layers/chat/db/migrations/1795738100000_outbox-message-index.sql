-- Up Migration

-- A message's events that carry its text (created, edited), by message id: a delete redacts them in the outbox,
-- in its own statement, whether still queued (the relay would publish the deleted text after the delete) or
-- published and kept until OUTBOX_RETENTION_HOURS. An expression index, so the previous release's writes are
-- indexed too; one entry per created or edited event, none for the other events. Built without CONCURRENTLY
-- (node-pg-migrate runs each migration in a transaction): outbox writes wait while it reads the retained outbox.
CREATE INDEX outbox_message_idx ON outbox (((event -> 'data' ->> 'message_id')::uuid))
  WHERE event_type IN ('chat.message.created', 'chat.message.edited');

-- Down Migration
DROP INDEX outbox_message_idx;
