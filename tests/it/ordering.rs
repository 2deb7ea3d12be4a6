//! FIFO ordering across real processes: two dispatchers (and a scheduler) deliver 1,000 events
//! to one `fifo` webhook whose endpoint fails about 30 % of requests at random; the receiver
//! sees each event's first successful arrival in acceptance order, none lost, never two
//! requests at once. And the same with a dispatcher SIGKILLed mid-run.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering},
    },
    time::Duration,
};

use hookrelay_shared::{
    ordering::Ordering,
    testing::{TestEnv, eventually},
    webhooks::{self, NewWebhook},
};
use uuid::Uuid;

use crate::fleet::{Fleet, count, publish_orders};

const EVENTS: usize = 1000;
const WAIT: Duration = Duration::from_secs(600);

/// Retries 100 ms apart, 15 of them (a delivery failing 16 times in a row at 30 % is about
/// one in 10^8); the breaker never opens (it would defer the webhook for its cool-down).
const SETTINGS: [(&str, &str); 2] = [
    (
        "HOOKRELAY_RETRY_SCHEDULE",
        "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
    ),
    ("HOOKRELAY_CIRCUIT_FAILURES", "1000000"),
];

/// What the receiver saw, in order: each request's event id and whether it answered 200.
#[derive(Clone, Default)]
struct Log {
    requests: Arc<Mutex<Vec<(String, bool)>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl Log {
    fn requests(&self) -> Vec<(String, bool)> {
        self.requests.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Each event's first successful arrival, in the order they came.
    fn first_successes(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.requests()
            .into_iter()
            .filter(|(id, ok)| *ok && seen.insert(id.clone()))
            .map(|(id, _)| id)
            .collect()
    }
}

/// A receiver on a thread of its own that answers 500 to about 30 % of requests at random.
fn random_failing_receiver() -> (String, Log) {
    let log = Log::default();
    let l = log.clone();
    let seed = AtomicU64::new((time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64) | 1);
    let seed = Arc::new(seed);
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let (l, seed) = (l.clone(), seed.clone());
        async move {
            let now = l.in_flight.fetch_add(1, AtomicOrdering::SeqCst) + 1;
            l.max_in_flight.fetch_max(now, AtomicOrdering::SeqCst);
            // xorshift64: enough randomness for a test, no dependency.
            let mut x = seed.load(AtomicOrdering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            seed.store(x, AtomicOrdering::Relaxed);
            let ok = x % 100 >= 30;
            let id = headers
                .get("webhook-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if let Ok(mut v) = l.requests.lock() {
                v.push((id, ok));
            }
            l.in_flight.fetch_sub(1, AtomicOrdering::SeqCst);
            if ok {
                axum::http::StatusCode::OK
            } else {
                axum::http::StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    });
    let addr = crate::receiver::serve_on_own_thread(app);
    (format!("http://{addr}/fifo"), log)
}

async fn fifo_webhook(env: &TestEnv, url: String) -> Uuid {
    webhooks::create(
        &env.db,
        NewWebhook {
            name: "fifo".into(),
            url,
            event_types: vec!["order.*".into()],
            enabled: true,
            ordering: Some(Ordering::Fifo),
            ..Default::default()
        },
    )
    .await
    .expect("webhook created")
    .0
    .id
}

/// The event ids in acceptance order (their sequence numbers), checking the numbers run 1..=n.
async fn accepted_order(env: &TestEnv, webhook_id: Uuid) -> Vec<String> {
    let rows: Vec<(String, Option<i64>)> =
        sqlx::query_as("SELECT event_id, seq FROM deliveries WHERE webhook_id = $1 ORDER BY seq")
            .bind(webhook_id)
            .fetch_all(&env.db)
            .await
            .expect("deliveries");
    let seqs: Vec<Option<i64>> = rows.iter().map(|r| r.1).collect();
    let expected: Vec<Option<i64>> = (1..=rows.len() as i64).map(Some).collect();
    assert_eq!(seqs, expected, "one number each, without gaps");
    rows.into_iter().map(|r| r.0).collect()
}

async fn all_succeeded(env: &TestEnv) -> bool {
    count(env, "SELECT count(*) FROM deliveries WHERE state = 'succeeded'").await == EVENTS as i64
}

fn check_order(order: &[String], log: &Log, ids: &[String]) {
    let firsts = log.first_successes();
    assert_eq!(
        firsts.len(),
        EVENTS,
        "every event arrived successfully once at least"
    );
    let mut sorted_ids = ids.to_vec();
    sorted_ids.sort();
    let mut sorted_order = order.to_vec();
    sorted_order.sort();
    assert_eq!(
        sorted_order, sorted_ids,
        "every published event was accepted once"
    );
    if let Some(i) = firsts.iter().zip(order).position(|(a, b)| a != b) {
        panic!(
            "out of order at {i}: the receiver's first successes {:?} against accepted {:?}",
            &firsts[i.saturating_sub(2)..(i + 3).min(firsts.len())],
            &order[i.saturating_sub(2)..(i + 3).min(order.len())]
        );
    }
    let failures = log.requests().iter().filter(|(_, ok)| !ok).count();
    assert!(
        failures > 100,
        "the endpoint failed {failures} times: the random failures ran"
    );
}

#[tokio::test]
async fn two_dispatchers_deliver_1000_events_in_acceptance_order_through_random_failures() {
    let env = TestEnv::new().await;
    let (url, log) = random_failing_receiver();
    let hook = fifo_webhook(&env, url).await;
    let mut fleet = Fleet::new(&SETTINGS);
    fleet.start_all(&env.config, &["dispatcher", "dispatcher", "scheduler"]);
    let ids = publish_orders(&env, "fifo", 0..EVENTS).await;
    let done = eventually(WAIT, || all_succeeded(&env)).await;
    fleet.assert_running();
    assert!(
        done,
        "every delivery succeeded ({} requests seen)\n{}",
        log.requests().len(),
        fleet.logs()
    );
    let order = accepted_order(&env, hook).await;
    check_order(&order, &log, &ids);
    assert_eq!(
        log.max_in_flight.load(AtomicOrdering::SeqCst),
        1,
        "never two requests to the ordered webhook at once"
    );
    fleet.sigterm_all_exit_0(Duration::from_secs(15)).await;
    drop(fleet);
    env.cleanup().await;
}

#[tokio::test]
async fn a_dispatcher_sigkilled_mid_run_keeps_the_order_and_loses_nothing() {
    let env = TestEnv::new().await;
    let (url, log) = random_failing_receiver();
    let hook = fifo_webhook(&env, url).await;
    let mut fleet = Fleet::new(&SETTINGS);
    fleet.start_all(&env.config, &["dispatcher", "dispatcher", "scheduler"]);
    let ids = publish_orders(&env, "fifokill", 0..EVENTS).await;
    assert!(
        eventually(WAIT, || async { log.first_successes().len() >= EVENTS / 3 }).await,
        "a third delivered before the kill"
    );
    fleet.sigkill(0);
    let done = eventually(WAIT, || all_succeeded(&env)).await;
    fleet.assert_running();
    assert!(
        done,
        "every delivery succeeded after the kill ({} first successes)\n{}",
        log.first_successes().len(),
        fleet.logs()
    );
    let order = accepted_order(&env, hook).await;
    check_order(&order, &log, &ids);
    drop(fleet);
    env.cleanup().await;
}
