-- Up Migration

-- Statistics on the message id that outbox_message_idx indexes. The planner takes no statistics from a partial
-- index's expression, so it guessed 0.5 % of the outbox for each message id: an erase's statements (events by its
-- messages' ids) and a delete's redaction were costed by the size of the outbox, not the session. On a year's data
-- (1.8 M retained events) each erase statement passed jit_above_cost and was compiled on every run (+6–60 ms each:
-- the retention purge erased 3–5 × fewer sessions in its time); a delete's redaction does too from ≈ 6 M events.
-- Expression statistics (PostgreSQL 14+) are taken by ANALYZE from its sample of the table, whatever the index's
-- predicate. CREATE STATISTICS and ANALYZE take SHARE UPDATE EXCLUSIVE: outbox reads and writes go on (ANALYZE
-- reads a sample of 30,000 rows: ≈ 1 s here at 1.8 M events; without it, autovacuum's next analyze fills them).
CREATE STATISTICS outbox_message_id_stats ON (((event -> 'data' ->> 'message_id')::uuid)) FROM outbox;
ANALYZE outbox;

-- Down Migration
DROP STATISTICS outbox_message_id_stats;
