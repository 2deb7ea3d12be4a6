-- hookrelay schema. PostgreSQL is the record of truth: Redis and RabbitMQ can be rebuilt from it.
--
-- events, deliveries and attempts grow without bound, so they are range-partitioned by day:
-- retention drops whole partitions instead of deleting rows. events and deliveries share the
-- partition key (the time the event was received) so a day of both drops together; attempts are
-- partitioned by attempted_at, which is what the delivery log filters and sorts on.
-- Partitions are created ahead of time by hookrelay_ensure_partitions().

CREATE TABLE webhooks (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    url          text NOT NULL,
    event_types  text[] NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    retry_policy jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    deleted_at   timestamptz
);
CREATE INDEX webhooks_live_idx ON webhooks (created_at, id) WHERE deleted_at IS NULL;

-- One current secret (expires_at NULL) and, after a rotation, the previous ones until they expire.
CREATE TABLE webhook_secrets (
    id         uuid PRIMARY KEY,
    webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    secret     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz
);
CREATE INDEX webhook_secrets_webhook_idx ON webhook_secrets (webhook_id);

CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('viewer', 'admin', 'owner')),
    token_hash   bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Every event type seen, for the category filter and the q search (a few hundred rows).
CREATE TABLE event_types (
    event_type text PRIMARY KEY,
    category   text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now()
);

-- The payload is stored once, as the exact bytes that are signed and sent.
CREATE TABLE events (
    id          text NOT NULL,
    received_at timestamptz NOT NULL,
    event_type  text NOT NULL,
    category    text NOT NULL,
    occurred_at timestamptz NOT NULL,
    body        text NOT NULL,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);

-- One row per (event, webhook). state: pending (created, first attempt not yet recorded),
-- retrying (failed, next_attempt_at says when), succeeded, failed (retries exhausted).
-- For pending and retrying rows next_attempt_at is always set: for an attempt in flight it is a
-- lease, so a crashed process's work is found again by the scheduler's reconcile.
CREATE TABLE deliveries (
    id                uuid NOT NULL,
    event_id          text NOT NULL,
    event_received_at timestamptz NOT NULL,
    webhook_id        uuid NOT NULL,
    event_type        text NOT NULL,
    state             text NOT NULL CHECK (state IN ('pending', 'retrying', 'succeeded', 'failed')),
    attempt_count     integer NOT NULL DEFAULT 0,
    next_attempt_at   timestamptz,
    last_attempt_at   timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, event_received_at),
    UNIQUE (event_id, webhook_id, event_received_at)
) PARTITION BY RANGE (event_received_at);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at) WHERE state IN ('pending', 'retrying');
CREATE INDEX deliveries_webhook_idx ON deliveries (webhook_id, event_received_at);

-- One row per attempt: what was sent and what came back.
CREATE TABLE attempts (
    id                     uuid NOT NULL,
    delivery_id            uuid NOT NULL,
    event_id               text NOT NULL,
    event_received_at      timestamptz NOT NULL,
    webhook_id             uuid NOT NULL,
    event_type             text NOT NULL,
    category               text NOT NULL,
    attempt                integer NOT NULL,
    trigger                text NOT NULL CHECK (trigger IN ('initial', 'automatic', 'manual')),
    status                 text NOT NULL CHECK (status IN ('success', 'failed')),
    request_url            text NOT NULL,
    request_headers        jsonb NOT NULL,
    response_code          integer,
    response_headers       jsonb,
    response_body          text,
    response_body_truncated boolean NOT NULL DEFAULT false,
    error                  text,
    duration_ms            integer NOT NULL,
    attempted_at           timestamptz NOT NULL,
    PRIMARY KEY (id, attempted_at)
) PARTITION BY RANGE (attempted_at);
-- Log queries: newest first overall, and newest first within one filter. (id breaks ties in keyset pagination.)
CREATE INDEX attempts_time_idx ON attempts (attempted_at, id);
CREATE INDEX attempts_webhook_idx ON attempts (webhook_id, attempted_at, id);
CREATE INDEX attempts_status_idx ON attempts (status, attempted_at, id);
CREATE INDEX attempts_category_idx ON attempts (category, attempted_at, id);
CREATE INDEX attempts_type_idx ON attempts (event_type, attempted_at, id);
CREATE INDEX attempts_code_idx ON attempts (response_code, attempted_at, id);
CREATE INDEX attempts_delivery_idx ON attempts (delivery_id);

-- Creates the daily partitions of events, deliveries and attempts from days_back days ago to
-- days_ahead days ahead (UTC days). Safe to run concurrently from many replicas.
CREATE FUNCTION hookrelay_ensure_partitions(days_back integer, days_ahead integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    t text;
    created integer := 0;
    part text;
BEGIN
    FOR d IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - days_back,
                                    (now() AT TIME ZONE 'UTC')::date + days_ahead, interval '1 day')::date LOOP
        FOREACH t IN ARRAY ARRAY['events', 'deliveries', 'attempts'] LOOP
            part := t || '_p' || to_char(d, 'YYYYMMDD');
            IF to_regclass(part) IS NULL THEN
                BEGIN
                    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                                   part, t, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
                    created := created + 1;
                EXCEPTION WHEN duplicate_table OR unique_violation THEN
                    NULL; -- another replica created it first
                END;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END;
$$;
