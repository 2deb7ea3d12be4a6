//! End-to-end tests of the dispatcher's isolation: real `hookrelay dispatcher` and `scheduler`
//! processes, real endpoints on 127.0.0.1. This file: the helpers, and the tests of slots and
//! of a SIGKILL — one bad endpoint holds only its own slots, and deferred work outstanding at a
//! SIGKILL is not lost. `guard.rs`: the circuit breaker and the rate limit across two
//! dispatchers; `disable.rs`: Retry-After, 410 and a long failure.

mod disable;
mod guard;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hookrelay_shared::{
    testing::{Receiver, Reply, TestEnv, eventually},
    webhooks::{self, NewWebhook, Webhook},
};
use tokio::io::AsyncReadExt;

use crate::fleet::{Fleet, publish_events};

async fn hook(
    env: &TestEnv,
    url: &str,
    pattern: &str,
    max_in_flight: Option<u32>,
    rate_limit: Option<f64>,
) -> Webhook {
    webhooks::create(
        &env.db,
        NewWebhook {
            name: format!("hook {pattern}"),
            url: url.into(),
            event_types: vec![pattern.into()],
            enabled: true,
            max_in_flight,
            rate_limit,
            ..Default::default()
        },
    )
    .await
    .expect("webhook")
    .0
}

/// Publishes `n` events of `event_type` and waits for the broker's confirms.
async fn publish(env: &TestEnv, prefix: &str, event_type: &str, n: usize) {
    let events: Vec<(String, &str, serde_json::Value)> = (0..n)
        .map(|i| {
            (
                format!("evt_{prefix}_{i}"),
                event_type,
                serde_json::json!({"i": i}),
            )
        })
        .collect();
    publish_events(env, &events).await;
}

async fn count(env: &TestEnv, sql: &str, id: uuid::Uuid) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(id)
        .fetch_one(&env.db)
        .await
        .expect("count query")
}

/// Whether `n` of webhook `id`'s deliveries are in `state` within `within`.
async fn deliveries_reach(env: &TestEnv, id: uuid::Uuid, state: &str, n: i64, within: Duration) -> bool {
    eventually(within, || async {
        let sql = "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND state = $2";
        sqlx::query_scalar::<_, i64>(sql)
            .bind(id)
            .bind(state)
            .fetch_one(&env.db)
            .await
            .expect("count query")
            == n
    })
    .await
}

/// `hookrelay` processes, one per role, with short timeouts and cool-downs, and `extra`
/// environment.
fn start(env: &TestEnv, extra: &[(&str, &str)], roles: &[&str]) -> Fleet {
    let short = [
        ("HOOKRELAY_ATTEMPT_LEASE", "10s"),
        ("HOOKRELAY_CIRCUIT_COOLDOWN", "2s"),
        ("HOOKRELAY_CIRCUIT_MAX_COOLDOWN", "4s"),
    ];
    let mut fleet = Fleet::new(&[&short[..], extra].concat());
    fleet.start_all(&env.config, roles);
    fleet
}

/// A receiver answering `reply(i)` to its `i`th request, and when each request arrived.
async fn timed(
    reply: impl Fn(usize) -> Reply + Send + Sync + 'static,
) -> (Receiver, Arc<Mutex<Vec<Instant>>>) {
    let times = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let t = times.clone();
    let rx = Receiver::start_with(move |i| {
        if let Ok(mut v) = t.lock() {
            v.push(Instant::now());
        }
        reply(i)
    })
    .await;
    (rx, times)
}

/// An endpoint that accepts connections and never answers; counts the connections open at
/// once (each request in flight holds one: the client closes it when it gives up).
struct BlackHole {
    url: String,
    open: Arc<AtomicUsize>,
    max_open: Arc<AtomicUsize>,
}

async fn black_hole() -> BlackHole {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hole", listener.local_addr().expect("addr"));
    let open = Arc::new(AtomicUsize::new(0));
    let max_open = Arc::new(AtomicUsize::new(0));
    let (o, m) = (open.clone(), max_open.clone());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let o = o.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    BlackHole { url, open, max_open }
}

#[tokio::test]
async fn a_black_hole_holds_only_its_own_slots_and_a_healthy_webhook_keeps_its_pace() {
    let env = TestEnv::new().await;
    let hole = black_hole().await;
    let healthy = Receiver::start().await;
    let h_hole = hook(&env, &hole.url, "hole.*", None, None).await;
    let h_ok = hook(&env, &healthy.url("/ok"), "ok.*", None, None).await;
    let fleet = start(&env, &[], &["dispatcher", "scheduler"]);

    publish(&env, "hole", "hole.event", 1_000).await;
    // The black hole's first request is hanging now (it never answers, so its lane sends no
    // other until that one ends).
    let hanging = eventually(Duration::from_secs(20), || async {
        hole.open.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(hanging, "the black hole gets a request");
    let started = Instant::now();
    publish(&env, "ok", "ok.event", 1_000).await;
    let all = healthy.wait_for(1_000, Duration::from_secs(30)).await;
    let took = started.elapsed();
    let hole_max = hole.max_open.load(Ordering::SeqCst);
    let hole_attempts = count(
        &env,
        "SELECT count(*) FROM attempts WHERE webhook_id = $1",
        h_hole.id,
    )
    .await;
    // What waits in the black hole's queue is deferred once it has waited a second (the
    // healthy events may all have arrived before that).
    let deferrals_sql = "SELECT COALESCE(sum(deferrals), 0)::int8 FROM deliveries WHERE webhook_id = $1";
    eventually(Duration::from_secs(15), || async {
        count(&env, deferrals_sql, h_hole.id).await > 0
    })
    .await;
    let deferred = count(&env, deferrals_sql, h_hole.id).await;
    let retried_ok = count(
        &env,
        "SELECT count(*) FROM attempts WHERE webhook_id = $1 AND attempt > 1",
        h_ok.id,
    )
    .await;
    drop(fleet);
    eprintln!(
        "healthy: 1000 in {took:?}; black hole: max {hole_max} connections open, {hole_attempts} attempts, {deferred} deferrals"
    );
    assert!(
        all,
        "the healthy webhook got all 1,000 events beside the black hole"
    );
    assert!(took < Duration::from_secs(20), "at its own pace: {took:?}");
    assert!(
        hole_max == 1,
        "the black hole, which never answers, had one request in flight, not its cap (32): {hole_max}"
    );
    assert!(deferred > 0, "what the black hole could not take was deferred");
    assert_eq!(retried_ok, 0, "the healthy webhook needed no retry");
    env.cleanup().await;
}

#[tokio::test]
async fn a_dispatcher_killed_with_deferred_work_outstanding_loses_nothing() {
    let env = TestEnv::new().await;
    let rx = Receiver::start().await;
    let h = hook(&env, &rx.url("/k"), "kill.*", None, Some(20.0)).await;
    let mut fleet = start(&env, &[], &["dispatcher", "scheduler"]);
    publish(&env, "kill", "kill.event", 200).await;
    let some = eventually(Duration::from_secs(20), || async { rx.count() >= 20 }).await;
    assert!(some, "deliveries start");
    let deferred = count(
        &env,
        "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND deferrals > 0",
        h.id,
    )
    .await;
    assert!(deferred > 100, "most deliveries wait deferred: {deferred}");
    fleet.sigkill(0);
    fleet.start(&env.config, "dispatcher");
    let done = deliveries_reach(&env, h.id, "succeeded", 200, Duration::from_secs(60)).await;
    drop(fleet);
    let unique: std::collections::HashSet<String> = rx
        .received()
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    assert!(done, "every delivery succeeded after the restart");
    assert_eq!(unique.len(), 200, "every event arrived");
    env.cleanup().await;
}
