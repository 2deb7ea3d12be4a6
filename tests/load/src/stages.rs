//! Where a first attempt's latency goes, stage by stage, read back from PostgreSQL after a run:
//!
//! - **broker + batch**: publish (the `sent_at_us` the load tool puts in each event) → the
//!   dispatcher's `received_at` (stamped when its intake batch starts to be stored, so it holds
//!   RabbitMQ's routing and delivery and the batch window);
//! - **store + queue**: `received_at` → the first attempt's `attempted_at` (the batch's
//!   transaction, the ack, the lane's queue and a slot);
//! - **request**: the attempt's `duration_ms` as the dispatcher measured it.
//!
//! Printed for the whole run and for its first second alone (where a cold start shows).

use sqlx::PgPool;
use uuid::Uuid;

/// p50/p99 of each stage, in ms.
#[derive(sqlx::FromRow)]
struct Row {
    n: i64,
    broker_p50: Option<f64>,
    broker_p99: Option<f64>,
    store_p50: Option<f64>,
    store_p99: Option<f64>,
    request_p50: Option<f64>,
    request_p99: Option<f64>,
}

const QUERY: &str = "
WITH s AS (
    SELECT (e.received_at - to_timestamp((e.body::jsonb->'data'->>'sent_at_us')::float8 / 1e6)) AS broker,
           (a.attempted_at - e.received_at) AS store,
           a.duration_ms::float8 AS request,
           (e.body::jsonb->'data'->>'sent_at_us')::int8 AS sent_us
    FROM attempts a
    JOIN events e ON e.id = a.event_id AND e.received_at = a.event_received_at
    WHERE a.webhook_id = ANY($1) AND a.attempt = 1 AND e.body::jsonb->'data' ? 'sent_at_us'
), w AS (
    SELECT * FROM s WHERE $2 OR sent_us < (SELECT min(sent_us) FROM s) + 1000000
)
SELECT count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM broker) * 1000) AS broker_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM broker) * 1000) AS broker_p99,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM store) * 1000) AS store_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM store) * 1000) AS store_p99,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY request) AS request_p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY request) AS request_p99
FROM w";

/// Prints the stages of the run and of its first second. A failed query is said, not fatal:
/// the run's figures are already printed.
pub async fn print(pool: &PgPool, healthy: &[Uuid]) {
    for (label, whole) in [("whole run", true), ("first second", false)] {
        match sqlx::query_as::<_, Row>(QUERY)
            .bind(healthy)
            .bind(whole)
            .fetch_one(pool)
            .await
        {
            Ok(r) if r.n > 0 => println!(
                "stages, {label:<12}  broker+batch p50 {:.1} / p99 {:.1} ms, store+queue p50 {:.1} / p99 {:.1} ms, request p50 {:.1} / p99 {:.1} ms ({} events)",
                r.broker_p50.unwrap_or(f64::NAN),
                r.broker_p99.unwrap_or(f64::NAN),
                r.store_p50.unwrap_or(f64::NAN),
                r.store_p99.unwrap_or(f64::NAN),
                r.request_p50.unwrap_or(f64::NAN),
                r.request_p99.unwrap_or(f64::NAN),
                r.n
            ),
            Ok(_) => {}
            Err(e) => println!("stages, {label}: not read ({e})"),
        }
    }
}
