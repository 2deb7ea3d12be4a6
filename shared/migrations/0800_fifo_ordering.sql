-- FIFO ordering per webhook (issue 13): `ordering = 'fifo'` sends a webhook's deliveries one at
-- a time, in the order their events were accepted.
--
-- Intake numbers each delivery of an ordered webhook from webhook_sequences (in acceptance order
-- within its batch transaction); deliveries.seq keeps the number. The head of webhook W is its
-- lowest-seq delivery still pending/retrying: only the head has a next_attempt_at, the ones
-- behind it are "held" (pending, seq set, next_attempt_at NULL: not in Redis, not in memory).
-- The recorder promotes the next head in the transaction that ends the current one.
--
-- Lock order everywhere (intake, recorder, reconcile, auto-disable, a change of ordering): the
-- webhooks row (only where it is changed), then the webhook_sequences row, then deliveries by id.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS ordering text NOT NULL DEFAULT 'none'
    CHECK (ordering IN ('none', 'fifo'));

CREATE TABLE IF NOT EXISTS webhook_sequences (
    webhook_id uuid PRIMARY KEY,
    next_seq   bigint NOT NULL DEFAULT 1
);

ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS seq bigint;
-- When a held delivery became the head: its retry window is measured from then, not from
-- when it was accepted (it may have waited behind a failing head for longer than the window).
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS promoted_at timestamptz;
-- The head of a webhook, and the ones behind it, in order.
CREATE INDEX IF NOT EXISTS deliveries_fifo_idx ON deliveries (webhook_id, seq)
    WHERE seq IS NOT NULL AND state IN ('pending', 'retrying');
