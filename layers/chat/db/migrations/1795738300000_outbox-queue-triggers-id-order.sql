-- Up Migration

-- The outbox's delete and update triggers take queue rows off the queue in id order, as this release's marks lock
-- them. Their join followed the plan (a hash join over the queue's heap, whose order drifts from id order as the
-- queue churns): the previous release's erase (a delete of events) or marks (an update of events), running while
-- both releases do, could hold one queue row a mark waited for while waiting for one the mark held (a deadlock).
-- This release's erase locks its queue rows in id order before its deletes; its other writes take none here.
CREATE OR REPLACE FUNCTION outbox_dequeue_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM outbox_pending WHERE id = ANY(ARRAY(
    SELECT p.id FROM outbox_pending p JOIN gone g ON g.id = p.id ORDER BY p.id FOR UPDATE OF p));
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION outbox_dequeue_marked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM outbox_pending WHERE id = ANY(ARRAY(
    SELECT p.id FROM outbox_pending p JOIN marked m ON m.id = p.id
     WHERE m.published_at IS NOT NULL ORDER BY p.id FOR UPDATE OF p));
  RETURN NULL;
END $$;

-- Down Migration
CREATE OR REPLACE FUNCTION outbox_dequeue_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM outbox_pending p USING gone g WHERE p.id = g.id;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION outbox_dequeue_marked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM outbox_pending p USING marked m WHERE p.id = m.id AND m.published_at IS NOT NULL;
  RETURN NULL;
END $$;
