-- Payload filters (issue 13): a JSON document matched against each subscribed event in the
-- dispatcher's fan-out; NULL = every subscribed event. Validated by the API, compiled once per
-- webhook when the dispatcher loads its cache.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS filter jsonb;
