-- Up Migration

-- The queue of unpublished events, apart from the events. Publishing used to set outbox.published_at: a new
-- version of each ≈ 700-byte row (all of it in the WAL) and three index entries per event, the relay's costliest
-- statement. Now an event is published when its queue row (two columns) is deleted: ≈ 3 × less Postgres time per
-- relay batch, ≈ 20 × less WAL. The outbox itself is written once and pruned by age.
--
-- Expand only: the previous release keeps working on this schema (a deploy migrates before it replaces the
-- functions, and a rolled-back deploy leaves the previous functions on it for good). Its writes are queued, its
-- marks and its erases take events off the queue, and its partial indexes stay; it sees the events the new code
-- published as unpublished (published_at stays NULL) and sends them once more. A later migration may drop
-- published_at and those indexes once no stack can run the previous release.

-- No writer may commit between the backfill's snapshot and the insert trigger: its event would never be queued.
-- (Waits for the writers in flight, up to the migration's lock_timeout; the deploy retries.)
LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE outbox_pending (
  id bigint PRIMARY KEY, -- outbox.id; no foreign key (a check per event): the triggers below keep the two in step
  session_id uuid NOT NULL
);
CREATE INDEX outbox_pending_session_idx ON outbox_pending (session_id, id);
INSERT INTO outbox_pending (id, session_id) SELECT id, session_id FROM outbox WHERE published_at IS NULL;

-- Every event is queued by the statement that writes it, whoever the writer (a row written as published is not).
CREATE FUNCTION outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO outbox_pending (id, session_id) SELECT id, session_id FROM added WHERE published_at IS NULL;
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_enqueue AFTER INSERT ON outbox REFERENCING NEW TABLE AS added
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_enqueue();

-- An event deleted from the outbox leaves the queue (erase; the previous release's erase knows no queue). Events
-- are locked before their queue rows, as the previous release's marks lock them, so the two cannot deadlock.
CREATE FUNCTION outbox_dequeue_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM outbox_pending p USING gone g WHERE p.id = g.id;
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_dequeue_deleted AFTER DELETE ON outbox REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_dequeue_deleted();

-- The previous release marks what it published by setting published_at: that takes the event off the queue, so
-- the new relay does not send it again. The new code never updates outbox rows.
CREATE FUNCTION outbox_dequeue_marked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM outbox_pending p USING marked m WHERE p.id = m.id AND m.published_at IS NOT NULL;
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_dequeue_marked AFTER UPDATE ON outbox REFERENCING NEW TABLE AS marked
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_dequeue_marked();

-- An emptied outbox leaves no queue behind (a queue row without its event would read as a session's backlog).
-- A DELETE, not a TRUNCATE: `TRUNCATE outbox, outbox_pending` must work too, and the queue is small.
CREATE FUNCTION outbox_truncate_queue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM outbox_pending;
  RETURN NULL;
END $$;
CREATE TRIGGER outbox_truncate_queue AFTER TRUNCATE ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_truncate_queue();

-- Down Migration
-- Run it only once the functions are back on the previous release: this release's statements name outbox_pending.
-- What this release published (off the queue, published_at never set), the previous one must not send again.
-- Marked under the outbox's lock, a million such events held every outbox write (posts, edits, erases) for 20-40 s.
-- Most are now marked first, with writes going on (the insert trigger still queues them), and committed: until
-- then the previous release's relay sends them again and its marks wait for their rows, so a lock taken in the
-- same transaction would wait for marks that wait for it (a deadlock). Then, under the lock, only what was
-- published meanwhile is marked, found through the queue and the ids written since: no read of the whole outbox.
-- Should what follows the COMMIT fail, the marks stay (they are true) and the queue works on; run again. With
-- node-pg-migrate's --single-transaction (the CLI's default) the COMMIT also commits the downs run before this one.

-- A cut by id: once the writers in flight are done, no event up to the sequence's value read before is still to
-- commit (its writer held the lock the LOCK waits for). Taken in a subtransaction, the lock goes with it: it holds
-- writes only while it waits for those in flight.
SELECT set_config('outbox_down.cut', (CASE WHEN is_called THEN last_value ELSE 0 END)::text, false)
  FROM outbox_id_seq;
SAVEPOINT outbox_down_cut;
LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE;
ROLLBACK TO SAVEPOINT outbox_down_cut;
-- To test again under the lock: the events queued now (maybe published before it), and those skipped below.
DROP TABLE IF EXISTS pg_temp.outbox_down_recheck;
CREATE TEMP TABLE outbox_down_recheck AS SELECT id FROM outbox_pending;
-- A row another transaction holds (the previous release marking or erasing it) is skipped, not waited for: a wait
-- with the rows marked so far held could close a cycle with a mark that locks its rows in another order.
UPDATE outbox SET published_at = now()
 WHERE ctid = ANY(ARRAY(SELECT ctid FROM outbox o
                         WHERE published_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id)
                           FOR UPDATE SKIP LOCKED));
-- those skipped: still unmarked under the lock if their holder failed
INSERT INTO outbox_down_recheck
SELECT id FROM outbox o WHERE published_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id);
COMMIT;
BEGIN;
-- ACCESS EXCLUSIVE at once, as the DROP TRIGGERs need it: a weaker lock upgraded would deadlock with a reader that
-- writes after it has read. Held for the statements below only (milliseconds, tens with a long queue).
LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE;
-- by id (an index probe each; the index of unpublished events still holds an entry per event marked above)
UPDATE outbox o SET published_at = now()
 WHERE o.id = ANY(ARRAY(SELECT r.id FROM outbox_down_recheck r
                         WHERE NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = r.id)
                        UNION ALL
                        SELECT n.id FROM outbox n WHERE n.id > current_setting('outbox_down.cut')::bigint))
   AND published_at IS NULL AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.id = o.id);
DROP TABLE outbox_down_recheck;
DROP TRIGGER outbox_truncate_queue ON outbox;
DROP FUNCTION outbox_truncate_queue();
DROP TRIGGER outbox_dequeue_marked ON outbox;
DROP FUNCTION outbox_dequeue_marked();
DROP TRIGGER outbox_dequeue_deleted ON outbox;
DROP FUNCTION outbox_dequeue_deleted();
DROP TRIGGER outbox_enqueue ON outbox;
DROP FUNCTION outbox_enqueue();
DROP TABLE outbox_pending;
