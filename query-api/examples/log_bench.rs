//! Benchmark of the delivery-log queries (not a test): seeds 10 million attempts over 30 days
//! into a dedicated database, then measures p50/p99 of the first page of each filter and sort,
//! of `q`, and of a deep page via cursor, and prints EXPLAIN (ANALYZE, BUFFERS) of the slowest.
//!
//! ```text
//! cargo run --release -p hookrelay-query-api --example log_bench -- [rows] [runs]
//! ```
//! `HOOKRELAY_BENCH_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/hookrelay_bench`).
//! Seeding is skipped when the database already holds the rows.

use std::time::{Duration, Instant};

use hookrelay_query_api::{
    cursor::{Cursor, SortKey, SortValue},
    deliveries::{ListParams, LogQuery, build_query, fetch_page, resolve_q},
};
use hookrelay_shared::{Config, db};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

const WEBHOOKS: usize = 20;
const CATEGORIES: [&str; 5] = ["license", "activation", "product", "customer", "invoice"];
const ACTIONS: [&str; 6] = ["created", "updated", "deleted", "assigned", "revoked", "expired"];
const BATCH: i64 = 500_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookrelay_shared::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let rows: i64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000_000);
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);
    let config = Config {
        database_url: std::env::var("HOOKRELAY_BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/hookrelay_bench".into()),
        ..Config::default()
    };
    db::create_database_if_missing(&config).await?;
    let pool = db::connect(&config, 4).await?;
    // A database seeded by hand with psql (schema files applied directly) has the tables but no
    // sqlx bookkeeping; use it as it is.
    let seeded_by_hand: bool = sqlx::query_scalar(
        "SELECT to_regclass('attempts') IS NOT NULL AND to_regclass('_sqlx_migrations') IS NULL",
    )
    .fetch_one(&pool)
    .await?;
    if !seeded_by_hand {
        db::MIGRATOR.run(&pool).await?;
    }
    db::ensure_partitions(&pool, 32, 2).await?;
    seed(&pool, rows).await?;
    // The API's own log pool (generic plans), as the handler uses it.
    let pool = hookrelay_query_api::state::log_pool(&config.database_url)
        .ok_or_else(|| anyhow::anyhow!("bad database URL"))?;
    measure(&pool, runs).await
}

async fn seed(pool: &PgPool, rows: i64) -> anyhow::Result<()> {
    let have: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts")
        .fetch_one(pool)
        .await?;
    if have >= rows {
        println!("seed: {have} attempts already there");
        return Ok(());
    }
    let hooks: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM webhooks ORDER BY id")
        .fetch_all(pool)
        .await?;
    let hooks = if hooks.len() >= WEBHOOKS {
        hooks
    } else {
        let mut v = vec![];
        for i in 0..WEBHOOKS {
            let id = Uuid::now_v7();
            sqlx::query("INSERT INTO webhooks (id, name, url, event_types) VALUES ($1, $2, $3, '{*}')")
                .bind(id)
                .bind(format!(
                    "Service {i} ({})",
                    ["Billing", "CRM", "Audit", "Search", "Mailer"][i % 5]
                ))
                .bind(format!("https://svc{i}.example.com/webhooks/hookrelay"))
                .execute(pool)
                .await?;
            v.push(id);
        }
        v
    };
    let types: Vec<String> = CATEGORIES
        .iter()
        .flat_map(|c| ACTIONS.iter().map(move |a| format!("{c}.{a}")))
        .collect();
    for t in &types {
        sqlx::query("INSERT INTO event_types (event_type, category) VALUES ($1, split_part($1, '.', 1)) ON CONFLICT DO NOTHING")
            .bind(t)
            .execute(pool)
            .await?;
    }
    // The secondary indexes are dropped while loading and built afterwards: a sorted build is
    // far faster than millions of random insertions into 7 indexes x 30 partitions (the
    // loading rate fell from 500,000 rows per 27 s to one per 200 s with them in place).
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'attempts' AND indexname <> 'attempts_pkey'",
    )
    .fetch_all(pool)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {name}")))
            .execute(pool)
            .await?;
    }
    let started = Instant::now();
    let mut done = have;
    while done < rows {
        let n = BATCH.min(rows - done);
        // Spread uniformly over the last 30 days; ~85 % success; codes and errors as a real
        // system would see them. Skewed webhook and type choice (a few are busy, most quiet).
        sqlx::query(
            "INSERT INTO attempts (id, delivery_id, event_id, event_received_at, webhook_id, event_type, category,
                 attempt, trigger, status, request_url, request_headers, response_code, response_headers,
                 response_body, response_body_truncated, error, duration_ms, attempted_at)
             SELECT gen_random_uuid(), gen_random_uuid(), 'evt_' || g, t - interval '50 ms', $1[w], $2[ty],
                    split_part($2[ty], '.', 1), 1 + (g % 4 = 0)::int,
                    CASE WHEN g % 4 = 0 THEN 'automatic' WHEN g % 97 = 0 THEN 'manual' ELSE 'initial' END,
                    CASE WHEN ok THEN 'success' ELSE 'failed' END,
                    'https://svc.example.com/webhooks/hookrelay',
                    '{\"content-type\": \"application/json\", \"webhook-signature\": \"v1,AAAA\"}',
                    code, CASE WHEN code IS NULL THEN NULL ELSE '{\"content-type\": \"text/plain\"}'::jsonb END,
                    CASE WHEN code IS NULL THEN NULL ELSE 'ok' END, false,
                    CASE WHEN code IS NULL THEN 'connection refused' WHEN NOT ok THEN 'HTTP ' || code END,
                    (random() * 800)::int, t
             FROM (
                 SELECT g, t, ok, w, ty,
                        CASE WHEN ok THEN (ARRAY[200, 200, 200, 201, 204])[1 + g % 5]
                             ELSE (ARRAY[500, 502, 503, 404, 429, NULL, NULL, 410])[1 + g % 8] END AS code
                 FROM (
                     SELECT g,
                            now() - random() * interval '30 days' AS t,
                            random() < 0.85 AS ok,
                            1 + floor(power(random(), 2) * $4)::int AS w,
                            1 + floor(power(random(), 2) * $5)::int AS ty
                     FROM generate_series($3::bigint, $3::bigint + $6 - 1) g
                 ) s
             ) r",
        )
        .bind(&hooks)
        .bind(&types)
        .bind(done)
        .bind(hooks.len() as i32)
        .bind(types.len() as i32)
        .bind(n)
        .execute(pool)
        .await?;
        done += n;
        println!(
            "seed: {done}/{rows} attempts ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    for (name, def) in &indexes {
        let t = Instant::now();
        // `ON ONLY` would build the parent's index alone, without the partitions'.
        let def = def.replacen(" ON ONLY ", " ON ", 1);
        sqlx::query(sqlx::AssertSqlSafe(def)).execute(pool).await?;
        println!("seed: index {name} built in {:.0} s", t.elapsed().as_secs_f64());
    }
    sqlx::query("VACUUM ANALYZE attempts").execute(pool).await?;
    sqlx::query("ANALYZE webhooks").execute(pool).await?;
    sqlx::query("ANALYZE event_types").execute(pool).await?;
    println!("seed: done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The log's query parameters from `pairs`, as a query string gives them to the handler (an
/// unknown name is ignored).
fn params(pairs: &[(&str, &str)]) -> ListParams {
    let query: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).into()))
        .collect();
    serde_json::from_value(query.into()).expect("the log's parameters are strings")
}

/// A cursor deep inside the log: 15 days back, in the middle of the largest group of the
/// sort key (status `success`, code 200), i.e. millions of rows in, whichever the order.
fn deep_cursor(sort: SortKey, desc: bool) -> String {
    let value = match sort {
        SortKey::AttemptedAt => SortValue::None,
        SortKey::Status => SortValue::Status("success"),
        SortKey::ResponseCode => SortValue::Code(200),
    };
    let attempted_at = OffsetDateTime::now_utc() - time::Duration::days(15);
    Cursor {
        value,
        attempted_at,
        id: Uuid::nil(),
    }
    .encode(sort, desc)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn measure(pool: &PgPool, runs: usize) -> anyhow::Result<()> {
    let hook: Uuid = sqlx::query_scalar("SELECT id FROM webhooks ORDER BY id OFFSET 7 LIMIT 1")
        .fetch_one(pool)
        .await?;
    let hook = hook.to_string();
    let day_ago = (OffsetDateTime::now_utc() - time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)?;
    let month_ago = (OffsetDateTime::now_utc() - time::Duration::days(29))
        .format(&time::format_description::well_known::Rfc3339)?;
    let mut cases: Vec<(String, ListParams)> = vec![
        ("default (attempted_at desc)".into(), params(&[])),
        ("sort=attempted_at asc".into(), params(&[("order", "asc")])),
        ("sort=status desc".into(), params(&[("sort", "status")])),
        (
            "sort=status asc".into(),
            params(&[("sort", "status"), ("order", "asc")]),
        ),
        (
            "sort=response_code desc".into(),
            params(&[("sort", "response_code")]),
        ),
        (
            "sort=response_code asc".into(),
            params(&[("sort", "response_code"), ("order", "asc")]),
        ),
        ("category=invoice".into(), params(&[("category", "invoice")])),
        (
            "event_type=invoice.expired".into(),
            params(&[("event_type", "invoice.expired")]),
        ),
        ("status=failed".into(), params(&[("status", "failed")])),
        (
            "webhook_id (a quiet one)".into(),
            params(&[("webhook_id", &hook)]),
        ),
        ("response_code=410".into(), params(&[("response_code", "410")])),
        ("since=1 day ago".into(), params(&[("since", &day_ago)])),
        ("until=29 days ago".into(), params(&[("until", &month_ago)])),
        ("q=svc19 (one webhook URL)".into(), params(&[("q", "svc19")])),
        ("q=mailer (4 webhook names)".into(), params(&[("q", "mailer")])),
        ("q=expired (5 event types)".into(), params(&[("q", "expired")])),
        ("q=example (every webhook)".into(), params(&[("q", "example")])),
        (
            "status=failed&category=license&webhook_id".into(),
            params(&[
                ("status", "failed"),
                ("category", "license"),
                ("webhook_id", &hook),
            ]),
        ),
    ];
    for sort in [SortKey::AttemptedAt, SortKey::Status, SortKey::ResponseCode] {
        for desc in [true, false] {
            let c = deep_cursor(sort, desc);
            let order = if desc { "desc" } else { "asc" };
            cases.push((
                format!("deep page (15 days in) sort={} {order}", sort.as_str()),
                params(&[("sort", sort.as_str()), ("order", order), ("cursor", &c)]),
            ));
        }
    }
    println!("\n| query (first page, limit 50) | p50 ms | p99 ms | max ms |\n| --- | ---: | ---: | ---: |");
    let mut slowest: Option<(f64, String, LogQuery)> = None;
    for (name, p) in cases {
        let lq = LogQuery::parse(&p).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        for _ in 0..20 {
            fetch_page(pool, &lq)
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        }
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let page = fetch_page(pool, &lq)
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            times.push(t.elapsed());
            std::hint::black_box(page);
        }
        times.sort();
        let p99 = pct(&times, 0.99);
        let p50 = pct(&times, 0.5);
        println!(
            "| {name} | {:.1} | {p99:.1} | {:.1} |",
            pct(&times, 0.5),
            pct(&times, 1.0)
        );
        // The slowest by median: p99 on a shared machine is often one scheduling hiccup.
        if slowest.as_ref().is_none_or(|s| p50 > s.0) {
            slowest = Some((p50, name, lq));
        }
    }
    if let Some((p50, name, lq)) = slowest {
        println!("\nslowest: {name} (p50 {p50:.1} ms)\n");
        let q = match &lq.q {
            Some(q) => Some(resolve_q(pool, q).await?),
            None => None,
        };
        // The plan of the try that made the page (fetch_page widens a newest-first window
        // until the page is full).
        let windows = lq.windows(OffsetDateTime::now_utc());
        let tries = windows.len();
        for (i, since) in windows.into_iter().enumerate() {
            let step = lq.with_since(since);
            let mut count = build_query("SELECT count(*) FROM (", &step, q.as_ref());
            count.push(") page");
            let rows: i64 = count.build_query_scalar().fetch_one(pool).await?;
            if rows > step.limit || i + 1 == tries {
                println!("try {} of {tries} (since {since:?}) made the page:\n", i + 1);
                let mut qb = build_query("EXPLAIN (ANALYZE, BUFFERS) ", &step, q.as_ref());
                let lines: Vec<(String,)> = qb.build_query_as().fetch_all(pool).await?;
                for (l,) in lines {
                    println!("{l}");
                }
                break;
            }
        }
    }
    Ok(())
}
