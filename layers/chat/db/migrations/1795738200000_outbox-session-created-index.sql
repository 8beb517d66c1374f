-- Up Migration

-- A session's created event (it carries the user_id), by session: an erase deletes it from the outbox, published
-- and kept until OUTBOX_RETENTION_HOURS or not, as it deletes the session's events that carry text (through
-- outbox_message_idx). One entry per session. Built without CONCURRENTLY (node-pg-migrate runs each migration in a
-- transaction): outbox writes wait while it reads the retained outbox.
CREATE INDEX outbox_session_created_idx ON outbox (session_id) WHERE event_type = 'chat.session.created';

-- Down Migration
DROP INDEX outbox_session_created_idx;
