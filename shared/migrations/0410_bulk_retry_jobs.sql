-- Durable bulk retries (issue 11, item 8). POST /api/v1/deliveries/retry stores a job; a worker
-- in any query-api replica claims it (FOR UPDATE SKIP LOCKED, with a lease so a crashed
-- replica's job is taken over), walks the matching failed attempts in keyset order
-- (attempted_at, id) a chunk at a time, and records its position and counters after each
-- chunk's publishes are confirmed. `until` in the stored filter is frozen at creation, so the
-- attempts a job's own retries make are never part of it.
CREATE TABLE IF NOT EXISTS bulk_retry_jobs (
    id               uuid PRIMARY KEY,
    filter           jsonb NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    -- Deliveries counted at creation that the job will queue, and those it skips because their
    -- webhook is disabled or deleted.
    total            bigint NOT NULL,
    skipped_disabled bigint NOT NULL,
    -- Progress: queued (confirmed by the broker) and skipped at processing time (succeeded,
    -- disabled or queued by another job since the count).
    queued           bigint NOT NULL DEFAULT 0,
    skipped          bigint NOT NULL DEFAULT 0,
    after_at         timestamptz,
    after_id         uuid,
    lease_owner      uuid,
    lease_until      timestamptz,
    error            text,
    requested_by     uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz
);
CREATE INDEX IF NOT EXISTS bulk_retry_jobs_open_idx ON bulk_retry_jobs (created_at) WHERE state IN ('pending', 'running');

-- One row per delivery a job has handled: queued, or skipped. It makes each delivery count once
-- per job across chunks and restarts, and keeps a second job from queuing again a delivery
-- that is queued and not yet attempted.
CREATE TABLE IF NOT EXISTS bulk_retry_items (
    job_id      uuid NOT NULL REFERENCES bulk_retry_jobs (id) ON DELETE CASCADE,
    delivery_id uuid NOT NULL,
    queued      boolean NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, delivery_id)
);
CREATE INDEX IF NOT EXISTS bulk_retry_items_delivery_idx ON bulk_retry_items (delivery_id, at) WHERE queued;
