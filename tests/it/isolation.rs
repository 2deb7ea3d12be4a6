//! End-to-end tests of the dispatcher's isolation: real `hookrelay dispatcher` and `scheduler`
//! processes, real endpoints on 127.0.0.1. One bad endpoint holds only its own slots; limits,
//! the circuit breaker and Retry-After defer (no attempt, no retry used); 410 and a long
//! failure disable the webhook; a SIGKILL with deferred work outstanding loses nothing.

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
    // The black hole's first requests are hanging now.
    let hanging = eventually(Duration::from_secs(20), || async {
        hole.open.load(Ordering::SeqCst) >= 10
    })
    .await;
    assert!(hanging, "the black hole gets requests");
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
        hole_max <= 32,
        "the black hole never had more than its cap in flight: {hole_max}"
    );
    assert!(deferred > 0, "what the black hole could not take was deferred");
    assert_eq!(retried_ok, 0, "the healthy webhook needed no retry");
    env.cleanup().await;
}

#[tokio::test]
async fn the_circuit_opens_half_opens_and_closes_with_two_dispatchers() {
    let env = TestEnv::new().await;
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let rx = Receiver::start_with(move |_| {
        if f.load(Ordering::SeqCst) {
            Reply::status(500, "down")
        } else {
            Reply::ok()
        }
    })
    .await;
    let h = hook(&env, &rx.url("/x"), "cb.*", Some(2), None).await;
    // Quick retries, so the deliveries that failed before the circuit opened end soon after.
    let quick = [("HOOKRELAY_RETRY_SCHEDULE", "1s,1s,1s,1s,1s")];
    let fleet = start(&env, &quick, &["dispatcher", "dispatcher", "scheduler"]);
    let redis = redis::Client::open(env.config.redis_url.as_str())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = hookrelay_shared::circuit::key(&env.config.namespace, h.id);
    publish(&env, "cb", "cb.event", 40).await;
    let state = || {
        let (key, mut r) = (key.clone(), redis.clone());
        async move {
            redis::cmd("HGET")
                .arg(&key)
                .arg("state")
                .query_async::<Option<String>>(&mut r)
                .await
                .ok()
                .flatten()
        }
    };
    let opened = eventually(Duration::from_secs(20), || async {
        state().await.as_deref() == Some("open")
    })
    .await;
    assert!(opened, "five consecutive failures open the circuit");
    let at_open = rx.count();
    // While open (2 s), nothing is sent; then one probe at a time (it fails: open again, 4 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let during_open = rx.count() - at_open;
    assert!(
        during_open <= 4,
        "only requests already in flight end while open: {during_open}"
    );
    let half_open = eventually(Duration::from_secs(10), || async {
        rx.count() > at_open + during_open
    })
    .await;
    assert!(half_open, "after the cool-down a probe is sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let probes = rx.count() - at_open - during_open;
    assert!(
        probes <= 2,
        "one probe (per expired probe lease), not the backlog: {probes}"
    );
    failing.store(false, Ordering::SeqCst);
    let closed = eventually(Duration::from_secs(30), || async {
        state().await.as_deref() == Some("closed")
    })
    .await;
    assert!(closed, "a successful probe closes the circuit");
    let done = deliveries_reach(&env, h.id, "succeeded", 40, Duration::from_secs(60)).await;
    let deferrals = count(
        &env,
        "SELECT COALESCE(sum(deferrals), 0)::int8 FROM deliveries WHERE webhook_id = $1",
        h.id,
    )
    .await;
    // The system's part of the activity log: the circuit opened (more than once: failed
    // probes reopen it) and closed, each said once by the replica that made the transition.
    let kinds: Vec<(String, String)> = sqlx::query_as(
        "SELECT kind, actor FROM activity WHERE webhook_id = $1 AND kind LIKE 'circuit.%' ORDER BY at, id",
    )
    .bind(h.id)
    .fetch_all(&env.db)
    .await
    .expect("activity");
    drop(fleet);
    assert!(done, "every delivery succeeds once the endpoint is back");
    assert!(deferrals > 0, "attempts were deferred while the circuit was open");
    assert_eq!(
        kinds.first().map(|k| k.0.as_str()),
        Some("circuit.opened"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(|k| k.0.as_str()),
        Some("circuit.closed"),
        "{kinds:?}"
    );
    assert!(kinds.iter().all(|(_, actor)| actor == "system"), "{kinds:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_rate_limit_holds_across_two_dispatchers_and_deferrals_use_no_retry() {
    let env = TestEnv::new().await;
    let (rx, times) = timed(|_| Reply::ok()).await;
    let h = hook(&env, &rx.url("/rl"), "rl.*", None, Some(10.0)).await;
    let fleet = start(&env, &[], &["dispatcher", "dispatcher", "scheduler"]);
    publish(&env, "rl", "rl.event", 300).await;
    let first = eventually(Duration::from_secs(20), || async { rx.count() > 0 }).await;
    assert!(first, "the first request arrives");
    tokio::time::sleep(Duration::from_secs(22)).await;
    let v = times.lock().map(|v| v.clone()).unwrap_or_default();
    let t0 = v[0];
    let in_window = v
        .iter()
        .filter(|t| t.duration_since(t0) < Duration::from_secs(20))
        .count();
    let (max_deferrals, avg_deferrals): (i32, f64) = sqlx::query_as(
        "SELECT max(deferrals), avg(deferrals)::float8 FROM deliveries WHERE webhook_id = $1 AND state = 'succeeded'",
    )
    .bind(h.id)
    .fetch_one(&env.db)
    .await
    .expect("deferrals");
    let max_attempt: i32 =
        sqlx::query_scalar("SELECT COALESCE(max(attempt), 0) FROM attempts WHERE webhook_id = $1")
            .bind(h.id)
            .fetch_one(&env.db)
            .await
            .expect("attempts");
    let failed = count(
        &env,
        "SELECT count(*) FROM attempts WHERE webhook_id = $1 AND status <> 'success'",
        h.id,
    )
    .await;
    drop(fleet);
    eprintln!(
        "rate limit 10/s: {in_window} requests in the first 20 s; deferrals per delivery: max {max_deferrals}, mean {avg_deferrals:.2}"
    );
    assert!((190..=210).contains(&in_window), "10/s for 20 s: {in_window}");
    assert_eq!(
        max_attempt, 1,
        "a deferral is not an attempt: every request was attempt 1"
    );
    assert_eq!(failed, 0);
    assert!(
        max_deferrals <= 2,
        "a delivery is deferred to its reserved slot, not again and again: {max_deferrals}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn retry_after_defers_the_whole_webhook_and_410_disables_it() {
    let env = TestEnv::new().await;
    let (rx, times) = timed(|i| {
        if i == 0 {
            Reply::status(429, "slow down").header("retry-after", "3")
        } else {
            Reply::ok()
        }
    })
    .await;
    let gone = Receiver::start_with(|_| Reply::status(410, "gone")).await;
    let h = hook(&env, &rx.url("/ra"), "ra.*", Some(1), None).await;
    let h_gone = hook(&env, &gone.url("/gone"), "gone.*", Some(1), None).await;
    let quick = [("HOOKRELAY_RETRY_SCHEDULE", "1s,1s,1s")];
    let fleet = start(&env, &quick, &["dispatcher", "scheduler"]);
    publish(&env, "ra", "ra.event", 10).await;
    publish(&env, "gone", "gone.event", 20).await;
    let all = deliveries_reach(&env, h.id, "succeeded", 10, Duration::from_secs(30)).await;
    let disabled: (bool, Option<String>, bool) = sqlx::query_as(
        "SELECT enabled, disabled_reason, disabled_at IS NOT NULL FROM webhooks WHERE id = $1",
    )
    .bind(h_gone.id)
    .fetch_one(&env.db)
    .await
    .expect("webhook");
    let ended = deliveries_reach(&env, h_gone.id, "failed", 20, Duration::from_secs(20)).await;
    let error: Option<String> = sqlx::query_scalar(
        "SELECT error FROM deliveries WHERE webhook_id = $1 AND error IS NOT NULL LIMIT 1",
    )
    .bind(h_gone.id)
    .fetch_optional(&env.db)
    .await
    .expect("error")
    .flatten();
    let gone_requests = gone.count();
    drop(fleet);
    let v = times.lock().map(|v| v.clone()).unwrap_or_default();
    assert!(all, "every delivery succeeds after the pause");
    let gap = v[1].duration_since(v[0]);
    assert!(
        gap >= Duration::from_millis(2_900),
        "nothing is sent during the Retry-After: {gap:?}"
    );
    assert_eq!(
        disabled,
        (false, Some("gone".into()), true),
        "410 disables the webhook"
    );
    assert!(ended, "its waiting deliveries end failed");
    assert!(
        gone_requests <= 2,
        "nothing more is sent once it answered 410: {gone_requests}"
    );
    assert!(error.is_some_and(|e| e.contains("410")), "the error says why");
    env.cleanup().await;
}

#[tokio::test]
async fn a_webhook_failing_for_the_disable_window_is_disabled_and_reenabling_clears_it() {
    let env = TestEnv::new().await;
    let rx = Receiver::start_with(|_| Reply::status(503, "down")).await;
    let h = hook(&env, &rx.url("/down"), "down.*", None, None).await;
    let extra = [
        ("HOOKRELAY_DISABLE_AFTER", "3s"),
        ("HOOKRELAY_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s"),
        ("HOOKRELAY_CIRCUIT_COOLDOWN", "500ms"),
        ("HOOKRELAY_CIRCUIT_MAX_COOLDOWN", "1s"),
    ];
    let fleet = start(&env, &extra, &["dispatcher", "scheduler"]);
    publish(&env, "down", "down.event", 5).await;
    let disabled = eventually(Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT disabled_reason FROM webhooks WHERE id = $1")
            .bind(h.id)
            .fetch_one(&env.db)
            .await
            .ok()
            .flatten()
            .as_deref()
            == Some("failing")
    })
    .await;
    assert!(disabled, "every attempt failing for 3 s disables the webhook");
    let ended = deliveries_reach(&env, h.id, "failed", 5, Duration::from_secs(20)).await;
    assert!(
        ended,
        "its waiting deliveries end failed instead of being retried forever"
    );
    let auto: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT actor, details FROM activity WHERE webhook_id = $1 AND kind = 'webhook.auto_disabled'",
    )
    .bind(h.id)
    .fetch_all(&env.db)
    .await
    .expect("activity");
    assert_eq!(auto.len(), 1, "said once: {auto:?}");
    assert_eq!(auto[0].0, "system");
    assert_eq!(auto[0].1["reason"], "failing");
    let patched = webhooks::update(
        &env.db,
        h.id,
        webhooks::WebhookPatch {
            enabled: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("update")
    .expect("exists");
    drop(fleet);
    assert!(patched.enabled);
    assert_eq!(patched.disabled_reason, None, "re-enabling clears the reason");
    assert_eq!(patched.disabled_at, None);
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
