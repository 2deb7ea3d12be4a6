-- Per-webhook limits and auto-disable (issue: dispatcher isolation).
ALTER TABLE webhooks
    ADD COLUMN max_in_flight   integer NOT NULL DEFAULT 32 CHECK (max_in_flight BETWEEN 1 AND 1024),
    ADD COLUMN rate_limit      double precision CHECK (rate_limit > 0 AND rate_limit <= 100000),
    ADD COLUMN disabled_reason text CHECK (disabled_reason IN ('manual', 'failing', 'gone')),
    ADD COLUMN disabled_at     timestamptz;

-- A deferral moves next_attempt_at without an attempt: how often, why the last time, and the
-- error a delivery ended with when it ended without an attempt (its webhook was disabled).
ALTER TABLE deliveries
    ADD COLUMN deferrals       integer NOT NULL DEFAULT 0,
    ADD COLUMN deferred_reason text,
    ADD COLUMN error           text;

-- Response headers are stored capped (count and bytes), like the body; this marks the cut.
ALTER TABLE attempts ADD COLUMN response_headers_truncated boolean NOT NULL DEFAULT false;
