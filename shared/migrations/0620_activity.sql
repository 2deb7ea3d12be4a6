-- The activity log (issue 12): who did what, when. actor is the token's name (as it was
-- then) or 'system'; details is a small JSON object whose shape depends on kind. Newest first
-- with a keyset cursor on (at, id); purged with the attempts' retention by the scheduler.
CREATE TABLE IF NOT EXISTS activity (
    id         uuid PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    token_id   uuid,
    kind       text NOT NULL,
    webhook_id uuid,
    details    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS activity_at_idx ON activity (at, id);
CREATE INDEX IF NOT EXISTS activity_kind_idx ON activity (kind, at, id);
CREATE INDEX IF NOT EXISTS activity_webhook_idx ON activity (webhook_id, at, id) WHERE webhook_id IS NOT NULL;
