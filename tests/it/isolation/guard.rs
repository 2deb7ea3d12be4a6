//! The guard shared in Redis across two real dispatchers: the circuit opens, half-opens and
//! closes; a rate limit holds across both, and its deferrals use no retry.

use super::*;

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
