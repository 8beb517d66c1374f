-- Up Migration

-- events-consumer keeps a session_activity row per session, and an erased session's row (counts, times, the
-- erased mark) stayed for good. Maintenance now deletes it once the consumed event ids it could be confused with
-- are forgotten too (CONSUMED_EVENTS_RETENTION_HOURS after its last event): until then the mark makes a late copy
-- of the session's events change nothing visible. Indexed only where erased, for that delete.
CREATE INDEX session_activity_erased_idx ON session_activity (last_event_time) WHERE erased;

-- Down Migration
DROP INDEX session_activity_erased_idx;
