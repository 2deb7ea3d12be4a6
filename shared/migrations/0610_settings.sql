-- Settings changed at run time (issue 12): PUT /api/v1/settings. One row at most; a NULL column
-- (or no row) means the env/TOML value (HOOKRELAY_RETENTION, HOOKRELAY_RETRY_*) stands. Every
-- replica re-reads it at least every HOOKRELAY_SETTINGS_REFRESH (10 s by default).
CREATE TABLE IF NOT EXISTS settings (
    id             boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- Data retention in seconds (1 to 365 days).
    retention_secs bigint CHECK (retention_secs BETWEEN 86400 AND 31536000),
    -- The default retry policy: {"max_retries", "window"} or {"schedule"}, as per webhook.
    retry          jsonb,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- The token name that made the last change.
    updated_by     text
);
