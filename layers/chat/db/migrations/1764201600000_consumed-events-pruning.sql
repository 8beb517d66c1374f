-- Up Migration

-- maintenance prunes consumed_events by age (CONSUMED_EVENTS_RETENTION_HOURS): without it the table grew forever.
CREATE INDEX consumed_events_consumed_at_idx ON consumed_events (consumed_at);

-- Down Migration
DROP INDEX consumed_events_consumed_at_idx;
