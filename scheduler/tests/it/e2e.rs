//! End to end in-process: the real dispatcher sends to a real receiver, the scheduler fires
//! its retries. Counted at the receiver.

use std::{collections::HashMap, time::Duration};

use hookrelay_dispatcher::Dispatcher;
use hookrelay_shared::{
    duration::DurationList,
    testing::{Receiver, Reply, TestEnv},
    webhooks::{self, NewWebhook},
};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// Retries every second; the webhook circuit breaker (tested in tests/it/isolation.rs) stays
/// closed, since these tests count every retry of endpoints that fail many times in a row.
fn every_second(n: usize) -> impl FnOnce(&mut hookrelay_shared::Config) {
    move |c| {
        c.retry_schedule = Some(DurationList(vec![Duration::from_secs(1); n]));
        c.circuit_failures = 1_000_000;
    }
}

struct System {
    dispatcher: (CancellationToken, tokio::task::JoinHandle<anyhow::Result<()>>),
    schedulers: Vec<Running>,
}

impl System {
    async fn start(env: &TestEnv, schedulers: usize) -> Self {
        let d = Dispatcher::build(env.context()).await.expect("dispatcher builds");
        let stop = CancellationToken::new();
        let task = tokio::spawn(d.run(stop.clone()));
        let mut s = vec![];
        for _ in 0..schedulers {
            s.push(start(env, fast(env)).await);
        }
        Self {
            dispatcher: (stop, task),
            schedulers: s,
        }
    }

    async fn stop(self) {
        for s in self.schedulers {
            s.stop().await;
        }
        self.dispatcher.0.cancel();
        let _ = self.dispatcher.1.await;
    }
}

async fn webhook(env: &TestEnv, url: String) {
    webhooks::create(
        &env.db,
        NewWebhook {
            name: "scheduler test".into(),
            url,
            event_types: vec!["license.*".into()],
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .expect("webhook created");
}

async fn publish(env: &TestEnv, ch: &lapin::Channel, n: usize) {
    for i in 0..n {
        let body =
            serde_json::json!({"id": format!("evt_{i}"), "type": "license.assigned", "data": {"i": i}});
        env.publish_raw(ch, "license.assigned", body.to_string().as_bytes())
            .await;
    }
}

/// `(webhook-id, x-webhook-attempt)` → how many requests the receiver got.
fn by_attempt(rx: &Receiver) -> HashMap<(String, u32), usize> {
    let mut m = HashMap::new();
    for r in rx.received() {
        let id = r.header("webhook-id").unwrap_or_default().to_owned();
        let attempt = r
            .header("x-webhook-attempt")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        *m.entry((id, attempt)).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn an_endpoint_that_always_fails_gets_exactly_four_attempts_a_second_apart() {
    let env = TestEnv::with(every_second(3)).await;
    let rx = Receiver::start_with(|_| Reply::status(500, "down")).await;
    webhook(&env, rx.url("/hook")).await;
    let system = System::start(&env, 1).await;
    publish(&env, &env.channel().await, 1).await;

    assert!(
        rx.wait_for(4, Duration::from_secs(30)).await,
        "got {} attempts",
        rx.count()
    );
    // Wait well past when a fifth would come, to be sure none does.
    tokio::time::sleep(Duration::from_secs(4)).await;
    // An entry whose 1 s claim lease ran out on a loaded machine (or that reconcile re-added
    // meanwhile) fires once more and is dropped by the dispatcher (the delivery has ended):
    // the set empties without another attempt.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while zcard(&env).await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = retry_set(&env).await;
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let got = rx.received();
    system.stop().await;
    assert!(
        left.is_empty(),
        "nothing left to fire; left (member, due - now ms): {:?}",
        left.iter().map(|(m, s)| (m, s - now_ms)).collect::<Vec<_>>()
    );
    assert_eq!(got.len(), 4, "exactly the first attempt and three retries");
    let attempts: Vec<_> = got
        .iter()
        .map(|r| r.header("x-webhook-attempt").unwrap_or("?").to_owned())
        .collect();
    assert_eq!(attempts, ["1", "2", "3", "4"]);
    for w in got.windows(2) {
        let gap = (w[1].at - w[0].at).as_seconds_f64();
        // The schedule is a floor (never early); the ceiling only shows the retry is not stuck.
        assert!(
            (0.95..5.0).contains(&gap),
            "retries should be ~1 s apart, got {gap:.3} s"
        );
    }
    let (state, count): (String, i32) = sqlx::query_as("SELECT state, attempt_count FROM deliveries")
        .fetch_one(&env.db)
        .await
        .expect("delivery");
    assert_eq!((state.as_str(), count), ("failed", 4));
    env.cleanup().await;
}

#[tokio::test]
async fn an_endpoint_that_fails_twice_then_succeeds_gets_exactly_three_attempts() {
    let env = TestEnv::with(every_second(3)).await;
    let rx = Receiver::start_failing_first(2, Reply::status(503, "busy")).await;
    webhook(&env, rx.url("/hook")).await;
    let system = System::start(&env, 1).await;
    publish(&env, &env.channel().await, 1).await;

    assert!(
        rx.wait_for(3, Duration::from_secs(30)).await,
        "got {} attempts",
        rx.count()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    system.stop().await;
    assert_eq!(rx.count(), 3);
    let (state, count): (String, i32) = sqlx::query_as("SELECT state, attempt_count FROM deliveries")
        .fetch_one(&env.db)
        .await
        .expect("delivery");
    assert_eq!((state.as_str(), count), ("succeeded", 3));
    let triggers: Vec<String> = sqlx::query_scalar("SELECT trigger FROM attempts ORDER BY attempt")
        .fetch_all(&env.db)
        .await
        .expect("attempts");
    assert_eq!(triggers, ["initial", "automatic", "automatic"]);
    env.cleanup().await;
}

#[tokio::test]
async fn with_two_schedulers_no_retry_reaches_the_endpoint_twice() {
    let env = TestEnv::with(every_second(2)).await;
    let rx = Receiver::start_with(|_| Reply::status(500, "down")).await;
    webhook(&env, rx.url("/hook")).await;
    let system = System::start(&env, 2).await;
    publish(&env, &env.channel().await, 200).await;

    assert!(
        rx.wait_for(600, Duration::from_secs(60)).await,
        "got {} of 600",
        rx.count()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    system.stop().await;
    let counts = by_attempt(&rx);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(rx.count(), 600, "200 events x (1 attempt + 2 retries)");
    for attempt in 1..=3 {
        assert_eq!(
            counts.keys().filter(|(_, a)| *a == attempt).count(),
            200,
            "attempt {attempt}"
        );
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_redis_flush_with_1000_retries_pending_still_sends_each_once() {
    // One retry, 10 s after the first failure: time to flush while all 1,000 are pending.
    let env = TestEnv::with(|c| {
        c.retry_schedule = Some(DurationList(vec![Duration::from_secs(10)]));
        c.circuit_failures = 1_000_000;
    })
    .await;
    let rx = Receiver::start_with(|_| Reply::status(500, "down")).await;
    webhook(&env, rx.url("/hook")).await;
    let system = System::start(&env, 1).await;
    publish(&env, &env.channel().await, 1000).await;
    let retrying = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deliveries WHERE state = 'retrying'")
            .fetch_one(&env.db)
            .await
            .expect("count")
    };
    assert!(
        hookrelay_shared::testing::eventually(Duration::from_secs(60), || async { retrying().await == 1000 })
            .await,
        "all 1,000 first attempts failed and wait for their retry ({} so far)",
        retrying().await
    );
    let second_attempts = rx
        .received()
        .iter()
        .filter(|r| r.header("x-webhook-attempt") == Some("2"))
        .count();
    assert_eq!(second_attempts, 0, "the flush lands before any retry fired");
    assert!(zcard(&env).await > 0, "the retries were in Redis");
    flush_namespace(&env).await;

    assert!(
        rx.wait_for(2000, Duration::from_secs(60)).await,
        "got {} of 2000",
        rx.count()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    system.stop().await;
    let counts = by_attempt(&rx);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "sent more than once: {:?}",
        &twice[..twice.len().min(5)]
    );
    assert_eq!(
        counts.keys().filter(|(_, a)| *a == 2).count(),
        1000,
        "every retry was sent"
    );
    assert_eq!(rx.count(), 2000);
    env.cleanup().await;
}
