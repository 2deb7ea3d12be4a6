-- The admin portal (issue 12): GET /api/v1/event-types shows when each type was last seen. The
-- dispatcher refreshes last_seen_at at most about once a minute per type and process (an
-- upsert beside its first-seen insert), so the hot event insert path gains no per-event write.
ALTER TABLE event_types ADD COLUMN IF NOT EXISTS last_seen_at timestamptz;
UPDATE event_types SET last_seen_at = first_seen WHERE last_seen_at IS NULL;
ALTER TABLE event_types ALTER COLUMN last_seen_at SET DEFAULT now();
ALTER TABLE event_types ALTER COLUMN last_seen_at SET NOT NULL;
