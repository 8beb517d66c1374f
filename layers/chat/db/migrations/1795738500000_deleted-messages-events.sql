-- Up Migration

-- Messages deleted by a release before 1795738100000 (bugs 69 and 70 were fixed for later deletes only):
-- * their created and edited events kept the text: a queued one was published with it after the upgrade, a
--   published one kept it until OUTBOX_RETENTION_HOURS. Redacted here as a delete now redacts them (`content` "").
-- * their deleted events reused the message's version, so a consumer applying "version above the one held" skips
--   them and keeps the message. Those still queued take one more version than every other event of their message
--   (the published ones are on the topic already).
-- One statement, its rows locked in id order as a delete's redaction, an erase and the prune lock theirs (two
-- statements would each lock in id order, but not the two together: a deadlock with an erase). Row locks only.
UPDATE outbox AS o
   SET event = CASE WHEN o.event_type = 'chat.message.deleted'
                    THEN jsonb_set(o.event, '{data,version}', to_jsonb((o.event -> 'data' ->> 'version')::int + 1))
                    ELSE jsonb_set(o.event, '{data,content}', '""') END
 WHERE o.id = ANY(ARRAY(
   SELECT x.id FROM outbox AS x
    WHERE x.id = ANY(ARRAY(
            SELECT r.id FROM outbox AS r JOIN messages AS m
                ON m.message_id = (r.event -> 'data' ->> 'message_id')::uuid AND m.session_id = r.session_id
             WHERE m.deleted_at IS NOT NULL
               AND r.event_type IN ('chat.message.created', 'chat.message.edited')
               AND r.event -> 'data' ->> 'content' <> ''
            UNION ALL
            SELECT d.id FROM outbox_pending AS p JOIN outbox AS d ON d.id = p.id
             WHERE d.event_type = 'chat.message.deleted'
               AND EXISTS (SELECT 1 FROM outbox AS r
                            WHERE r.event_type IN ('chat.message.created', 'chat.message.edited')
                              AND (r.event -> 'data' ->> 'message_id')::uuid = (d.event -> 'data' ->> 'message_id')::uuid
                              AND r.session_id = d.session_id
                              AND (r.event -> 'data' ->> 'version')::int >= (d.event -> 'data' ->> 'version')::int)))
    ORDER BY x.id FOR NO KEY UPDATE OF x));

-- Down Migration
-- Nothing to undo: the redacted text is gone, as after a delete, and running the up again changes nothing.
