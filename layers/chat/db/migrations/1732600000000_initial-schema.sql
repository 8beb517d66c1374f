-- Up Migration

-- A chat session. The token is never stored, only its SHA-256.
CREATE TABLE sessions (
  session_id uuid PRIMARY KEY,
  user_id text,
  token_hash bytea NOT NULL,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  -- last seq handed out; seq is gapless per session because only the writer holding this row assigns it
  last_seq integer NOT NULL DEFAULT 0,
  -- non-deleted messages
  message_count integer NOT NULL DEFAULT 0,
  -- bumped by every change to the session; the cache keys its entries by it
  generation bigint NOT NULL DEFAULT 1,
  suggestions jsonb NOT NULL DEFAULT '[]'::jsonb
);
-- lets a wrong-session request tell "valid token, other session" (404) from "no such token" (401)
CREATE UNIQUE INDEX sessions_token_hash_key ON sessions (token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX sessions_updated_at_idx ON sessions (updated_at);

CREATE TABLE messages (
  message_id uuid PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
  seq integer NOT NULL,
  role text NOT NULL CHECK (role IN ('user', 'assistant')),
  content text NOT NULL,
  version integer NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL,
  edited_at timestamptz,
  -- tombstone: the row stays so seq stays gapless; its content is wiped
  deleted_at timestamptz,
  reply_to uuid,
  CONSTRAINT messages_session_seq_key UNIQUE (session_id, seq)
);

-- Transactional outbox: written in the same transaction as the change it describes.
-- No foreign key: an erased session's last event must outlive the session.
CREATE TABLE outbox (
  id bigserial PRIMARY KEY,
  event_id uuid NOT NULL UNIQUE,
  session_id uuid NOT NULL,
  event_type text NOT NULL,
  event jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_session_pending_idx ON outbox (session_id, id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_at_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

-- Idempotency-Key records (24 h). in_progress rows are claims; completed rows hold the response to replay.
CREATE TABLE idempotency_records (
  scope text NOT NULL,
  idempotency_key text NOT NULL,
  request_hash text NOT NULL,
  status text NOT NULL CHECK (status IN ('in_progress', 'completed')),
  status_code integer,
  response jsonb,
  locked_until timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_records_expires_at_idx ON idempotency_records (expires_at);

-- Sessions whose cache entries could not be invalidated because Redis was away; drained when it returns.
CREATE TABLE cache_invalidations (
  session_id uuid PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Projection kept by events-consumer: proves the stream is consumed, exactly once per event id.
CREATE TABLE session_activity (
  session_id uuid PRIMARY KEY,
  sessions_created integer NOT NULL DEFAULT 0,
  messages_created integer NOT NULL DEFAULT 0,
  messages_edited integer NOT NULL DEFAULT 0,
  messages_deleted integer NOT NULL DEFAULT 0,
  erased boolean NOT NULL DEFAULT false,
  last_event_time timestamptz
);
CREATE TABLE consumed_events (
  event_id uuid PRIMARY KEY,
  consumed_at timestamptz NOT NULL DEFAULT now()
);

-- Down Migration
DROP TABLE consumed_events;
DROP TABLE session_activity;
DROP TABLE cache_invalidations;
DROP TABLE idempotency_records;
DROP TABLE outbox;
DROP TABLE messages;
DROP TABLE sessions;
