-- Custom request headers (issue 13): name (lowercase) to value, added to every request to the
-- webhook. The values are secrets: the API shows them as "***" and attempts store them so.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS headers jsonb NOT NULL DEFAULT '{}';
