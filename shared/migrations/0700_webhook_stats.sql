-- Endpoint health stats (issue 12): a rollup of attempts per webhook, so
-- GET /api/v1/webhooks/{id}/stats costs the same at 10 attempts or 10 million.
--
-- One row per webhook, span (60 = a minute, 3600 = an hour), bucket start and shard. Each
-- dispatcher process adds what it recorded to its own shard's rows once a second (one upsert),
-- so concurrent recorder batches and replicas never update the same row; readers sum the
-- shards. latency is a fixed log-scale histogram of response times (hookrelay_shared::stats:
-- 0-15 ms exact, then 8 buckets per power of two), trailing empty buckets left out.
-- Minute rows are kept 26 h (only the start of a 24 h window reads them), hour rows 8 days or
-- the retention if shorter; the scheduler's retention run purges them.
CREATE TABLE IF NOT EXISTS webhook_stats (
    webhook_id      uuid NOT NULL,
    span_secs       integer NOT NULL CHECK (span_secs IN (60, 3600)),
    bucket          timestamptz NOT NULL,
    shard           integer NOT NULL,
    attempts        bigint NOT NULL,
    succeeded       bigint NOT NULL,
    last_success_at timestamptz,
    last_failure_at timestamptz,
    latency         bigint[] NOT NULL,
    PRIMARY KEY (webhook_id, span_secs, bucket, shard)
);
CREATE INDEX IF NOT EXISTS webhook_stats_bucket_idx ON webhook_stats (bucket);
