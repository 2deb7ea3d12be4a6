//! `hookrelay-load`: publishes N events to the exchange, runs a fast receiver, spawns the
//! `hookrelay dispatcher` release binary (or `hookrelay up` with `--up`), and reports events/s
//! published, deliveries/s persisted, publish→first-attempt latency (p50/p99), the
//! dispatcher's peak RSS and how busy the machine's cores were while it drained.
//!
//! Noisy-neighbour mode (`--black-holes N`): N more webhooks whose endpoint accepts TCP
//! connections and never answers get `--black-hole-events` events each, published before the
//! healthy load; the figures are the healthy webhooks' alone. `--noisy-neighbour` runs the load
//! without and then with one black hole and compares the two.
//!
//! It runs in its own database and namespace on the local services and removes them after.
//! Its parts: the endpoints (`receiver.rs`), what it publishes (`publish.rs`), the dispatcher
//! processes (`dispatchers.rs`), the measurements (`measure.rs`, `stages.rs`).

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use hookrelay_shared::{
    Config, amqp, db,
    webhooks::{self, NewWebhook},
};
use sqlx::{Connection, Executor};

mod dispatchers;
mod measure;
mod publish;
mod receiver;
mod stages;

#[derive(Parser, Debug, Clone)]
#[command(name = "hookrelay-load", about = "Load test of the hookrelay dispatcher")]
struct Args {
    /// Events to publish.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Events per second; 0 publishes as fast as the broker confirms.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Webhooks subscribed to every event (the fan-out).
    #[arg(long, default_value_t = 5)]
    webhooks: usize,
    /// The `hookrelay` binary to run as the dispatcher.
    #[arg(long, default_value = "target/release/hookrelay")]
    binary: PathBuf,
    /// Dispatcher processes to run.
    #[arg(long, default_value_t = 1)]
    dispatchers: usize,
    /// PostgreSQL server (without a database name).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379/0")]
    redis_url: String,
    /// Extra `KEY=VALUE` environment for the dispatcher (e.g. HOOKRELAY_PREFETCH=1000).
    #[arg(long = "env")]
    env: Vec<String>,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Keep the database and queues afterwards.
    #[arg(long)]
    keep: bool,
    /// Run `hookrelay up` (API, dispatcher and scheduler in one process) instead of the
    /// dispatcher alone.
    #[arg(long)]
    up: bool,
    /// Run a `hookrelay scheduler` process beside the dispatchers (not with `--up`, which has
    /// one), so deferred and failed deliveries come back to them; its memory is not counted.
    #[arg(long)]
    scheduler: bool,
    /// Webhooks whose endpoint accepts connections and never answers (noisy-neighbour mode).
    #[arg(long, default_value_t = 0)]
    black_holes: usize,
    /// Publish every event before the dispatcher starts, and measure the drain alone.
    #[arg(long)]
    prefill: bool,
    /// Events published to each black-hole webhook before the healthy load.
    #[arg(long, default_value_t = 3000)]
    black_hole_events: usize,
    /// Start the healthy load only once intake has stored every black-hole delivery, so the
    /// healthy events wait beside the black hole's backlog rather than behind its events in
    /// the broker queue (which any 3,000 events ahead would cost, black hole or not).
    #[arg(long)]
    settle_black_holes: bool,
    /// Run twice, without and then with one black hole (`--black-hole-events` queued to it), and
    /// compare the healthy webhooks' rate and p99 (fails if the rate drops below 90 % or the
    /// p99 more than doubles).
    #[arg(long)]
    noisy_neighbour: bool,
    /// The healthy webhooks' `max_in_flight` (default: the webhook default, 32). One webhook's
    /// rate is at most this divided by its request time.
    #[arg(long)]
    max_in_flight: Option<u32>,
    /// The healthy webhooks' `ordering`: `none` (default) or `fifo` (one at a time, in
    /// acceptance order: the rate is bounded by the round trip, record and promotion).
    #[arg(long, default_value = "none")]
    ordering: String,
    /// The receiver waits this long before answering each request.
    #[arg(long, default_value_t = 0)]
    response_ms: u64,
}

/// The healthy webhooks' figures of one run.
struct Figures {
    overall: f64,
    steady: Option<f64>,
    p99_ms: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    hookrelay_shared::install_crypto_provider();
    let args = Args::parse();
    if !args.noisy_neighbour {
        run(args).await?;
        return Ok(());
    }
    println!("== without a black hole");
    let base = run(Args {
        black_holes: 0,
        ..args.clone()
    })
    .await?;
    println!(
        "== with one black hole ({} events queued to it first)",
        args.black_hole_events
    );
    let noisy = run(Args {
        black_holes: 1,
        ..args.clone()
    })
    .await?;
    let rate = |f: &Figures| f.steady.unwrap_or(f.overall);
    let rate_ratio = rate(&noisy) / rate(&base);
    let p99_ratio = noisy.p99_ms / base.p99_ms;
    println!(
        "noisy neighbour: healthy rate {:.0} -> {:.0} deliveries/s ({:.0} %), p99 publish -> first attempt {:.1} -> {:.1} ms (x{p99_ratio:.2})",
        rate(&base),
        rate(&noisy),
        rate_ratio * 100.0,
        base.p99_ms,
        noisy.p99_ms
    );
    if rate_ratio < 0.9 || p99_ratio > 2.0 {
        bail!("the black hole hurt the healthy webhook: rate at least 90 % and p99 at most x2 expected");
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<Figures> {
    let suffix = format!("{:08x}", rand_suffix());
    let config = Config {
        database_url: format!("{}/hookrelay_load_{suffix}", args.postgres),
        amqp_url: args.amqp_url.clone(),
        redis_url: args.redis_url.clone(),
        namespace: format!("load_{suffix}"),
        allow_private_targets: true,
        ..Config::default()
    };
    let pool = db::migrate(&config).await.context("PostgreSQL")?;
    let names = amqp::Names::new(&config.namespace);
    let conn = amqp::connect(&config.amqp_url, "load")
        .await
        .context("RabbitMQ")?;
    let setup = conn.create_channel().await?;
    amqp::declare_topology(&setup, &names).await?;

    let stats = Arc::new(receiver::Stats {
        response_ms: args.response_ms,
        ..Default::default()
    });
    let ordering = hookrelay_shared::ordering::Ordering::parse(&args.ordering)
        .ok_or_else(|| anyhow::anyhow!("--ordering: `none` or `fifo`"))?;
    let addr = receiver::start(stats.clone()).await?;
    for i in 0..args.black_holes {
        let hole = receiver::black_hole().await?;
        webhooks::create(
            &pool,
            NewWebhook {
                name: format!("black hole {i}"),
                url: format!("http://{hole}/hole"),
                event_types: vec![format!("hole.t{i}")],
                enabled: true,
                ..Default::default()
            },
        )
        .await?;
    }
    let mut healthy = Vec::new();
    for i in 0..args.webhooks {
        healthy.push(
            webhooks::create(
                &pool,
                NewWebhook {
                    name: format!("load {i}"),
                    url: format!("http://{addr}/hook/{i}"),
                    event_types: vec!["load.*".into()],
                    enabled: true,
                    max_in_flight: args.max_in_flight,
                    ordering: Some(ordering),
                    ..Default::default()
                },
            )
            .await?
            .0
            .id,
        );
    }

    if args.prefill {
        let t = Instant::now();
        let publisher = amqp::confirm_channel(&conn).await?;
        publish::load(&args, &publisher, &names, &suffix).await?;
        println!(
            "prefilled {} events in {:.1} s (the dispatcher starts now; latencies include the wait)",
            args.events,
            t.elapsed().as_secs_f64()
        );
    }
    let mut scheduler = dispatchers::start_scheduler(&args, &config)?;
    let mut children = dispatchers::start(&args, &config, &setup, &names).await?;
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        let pids = pids.clone();
        tokio::spawn(async move {
            loop {
                let total: u64 = pids
                    .iter()
                    .filter_map(|p| measure::peak_rss_kib(*p))
                    .max()
                    .unwrap_or(0);
                peak.fetch_max(total, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };

    let expected = (args.events * args.webhooks) as i64;
    println!(
        "publishing {} events x {} webhooks = {expected} deliveries{}",
        args.events,
        args.webhooks,
        if args.rate > 0 {
            format!(" at {} events/s", args.rate)
        } else {
            " as fast as possible".into()
        }
    );
    let publisher = amqp::confirm_channel(&conn).await?;
    if args.black_holes > 0 {
        publish::black_hole_load(&args, &publisher, &names, &suffix).await?;
        if args.settle_black_holes {
            let want = args.black_holes.saturating_mul(args.black_hole_events) as i64;
            let since = Instant::now();
            let deadline = since + Duration::from_secs(args.timeout_secs);
            loop {
                let n: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE NOT webhook_id = ANY($1)")
                        .bind(&healthy)
                        .fetch_one(&pool)
                        .await?;
                if n >= want {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "only {n} of {want} black-hole deliveries were stored in {} s",
                        args.timeout_secs
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            println!(
                "black-hole deliveries stored by intake in {:.1} s; the healthy load starts now",
                since.elapsed().as_secs_f64()
            );
        }
    }
    let cpu_start = measure::cpu_jiffies();
    let started = Instant::now();
    if !args.prefill {
        publish::load(&args, &publisher, &names, &suffix).await?;
    }
    let publish_secs = started.elapsed().as_secs_f64();

    // Deliveries persisted, sampled once a second.
    let mut samples: Vec<(f64, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let persisted = loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts WHERE webhook_id = ANY($1)")
            .bind(&healthy)
            .fetch_one(&pool)
            .await?;
        samples.push((started.elapsed().as_secs_f64(), n));
        if n >= expected || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let total_secs = started.elapsed().as_secs_f64();
    let cpu_end = measure::cpu_jiffies();
    let success: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attempts WHERE status = 'success' AND webhook_id = ANY($1)")
            .bind(&healthy)
            .fetch_one(&pool)
            .await?;
    // Request time as the dispatcher measured it: with a webhook's max_in_flight requests at
    // once, one webhook's rate is at most max_in_flight / this.
    let request_ms: (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT avg(duration_ms)::float8,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms)
         FROM attempts WHERE webhook_id = ANY($1)",
    )
    .bind(&healthy)
    .fetch_one(&pool)
    .await?;
    let hole_stats: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM attempts WHERE NOT webhook_id = ANY($1)),
                (SELECT count(*) FROM deliveries WHERE NOT webhook_id = ANY($1)),
                (SELECT COALESCE(sum(deferrals), 0)::int8 FROM deliveries WHERE NOT webhook_id = ANY($1))",
    )
    .bind(&healthy)
    .fetch_one(&pool)
    .await?;
    sampler.abort();
    let peak_kib = peak.load(Ordering::Relaxed);
    let hung = dispatchers::stop(&mut children).await;
    if let Some(s) = scheduler.as_mut() {
        dispatchers::stop(std::slice::from_mut(s)).await;
    }

    // The steady rate: between 10 % and 90 % of the deliveries persisted.
    let at = |frac: f64| {
        samples
            .iter()
            .find(|(_, n)| *n as f64 >= frac * expected as f64)
            .copied()
    };
    let steady = match (at(0.1), at(0.9)) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => Some((n1 - n0) as f64 / (t1 - t0)),
        _ => None,
    };
    let pairs = stats.latencies_us.lock().map(|l| l.clone()).unwrap_or_default();
    let slowest = measure::slowest_seconds(&pairs);
    let mut lat: Vec<u64> = pairs.iter().map(|p| p.1).collect();
    lat.sort_unstable();
    println!(
        "events published:      {} in {publish_secs:.1} s = {:.0} events/s",
        args.events,
        args.events as f64 / publish_secs
    );
    println!(
        "deliveries persisted:  {persisted}/{expected} ({success} success) in {total_secs:.1} s = {:.0} deliveries/s overall",
        persisted as f64 / total_secs
    );
    if let Some(s) = steady {
        println!("steady rate (10%-90%): {s:.0} deliveries/s");
    }
    println!(
        "publish -> first attempt: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        measure::percentile(&lat, 0.5),
        measure::percentile(&lat, 0.99),
        measure::percentile(&lat, 1.0),
        lat.len()
    );
    if !slowest.is_empty() {
        println!(
            "slowest seconds:       {slowest} (second of publishing: worst latency, events over 100 ms)"
        );
    }
    stages::print(&pool, &healthy).await;
    println!(
        "request time:          avg {:.1} ms, p50 {:.1} ms, p99 {:.1} ms (as the dispatcher measured it)",
        request_ms.0.unwrap_or(f64::NAN),
        request_ms.1.unwrap_or(f64::NAN),
        request_ms.2.unwrap_or(f64::NAN)
    );
    println!(
        "receiver requests:     {}",
        stats.arrivals.load(Ordering::Relaxed)
    );
    println!(
        "dispatcher peak RSS:   {:.1} MiB (VmHWM, largest of {} process(es))",
        peak_kib as f64 / 1024.0,
        pids.len()
    );
    if let (Some((b0, t0)), Some((b1, t1))) = (cpu_start, cpu_end)
        && t1 > t0
    {
        println!(
            "machine busy:          {:.0} % of {} cores while publishing and draining",
            (b1 - b0) as f64 * 100.0 / (t1 - t0) as f64,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        );
    }
    if args.black_holes > 0 {
        println!(
            "black holes:           {} deliveries, {} attempts made, {} deferrals",
            hole_stats.1, hole_stats.0, hole_stats.2
        );
    }

    if !args.keep {
        for q in [&names.events_queue, &names.dead_queue, &names.deliveries_queue] {
            let _ = setup.queue_delete(q.as_str().into(), Default::default()).await;
        }
        let _ = setup
            .exchange_delete(names.events_exchange.as_str().into(), Default::default())
            .await;
        pool.close().await;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{}/postgres", args.postgres)).await {
            let sql = format!("DROP DATABASE IF EXISTS \"hookrelay_load_{suffix}\" WITH (FORCE)");
            let _ = admin.execute(sqlx::AssertSqlSafe(sql)).await;
        }
    }
    amqp::close(&conn, 200, "done").await;
    if !hung.is_empty() {
        bail!("dispatcher(s) {hung:?} did not exit within 45 s of SIGTERM (killed)");
    }
    if persisted < expected {
        bail!(
            "only {persisted} of {expected} deliveries were persisted within {} s",
            args.timeout_secs
        );
    }
    Ok(Figures {
        overall: persisted as f64 / total_secs,
        steady,
        p99_ms: measure::percentile(&lat, 0.99),
    })
}

fn rand_suffix() -> u32 {
    // No rand dependency needed: the clock's low bits are unique enough for a namespace.
    (receiver::now_us() & 0xffff_ffff) as u32 ^ std::process::id()
}
