//! Several real `hookrelay` processes on one namespace: every event delivered once and every
//! retry fired once, SIGKILL and SIGTERM lose nothing.

use std::{collections::BTreeSet, time::Duration};

use hookrelay_shared::testing::{TestEnv, eventually};

use crate::{
    fleet::{Fleet, RETRY_AT_ONCE, count, ok_and_flaky, order_webhook, publish_orders},
    receiver::start_receiver,
};

const WAIT: Duration = Duration::from_secs(120);

/// Waits until `sql` returns the same value for `quiet` (no more work moving).
async fn settled(env: &TestEnv, sql: &'static str, quiet: Duration) -> i64 {
    let mut last = count(env, sql).await;
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = count(env, sql).await;
        if now != last {
            last = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return now;
        }
    }
}

#[tokio::test]
async fn three_dispatchers_and_two_schedulers_deliver_every_event_once_and_fire_each_retry_once() {
    const EVENTS: usize = 300;
    let env = TestEnv::new().await;
    let (_, seen) = ok_and_flaky(&env).await;
    let mut fleet = Fleet::new(&RETRY_AT_ONCE);
    fleet.start_all(
        &env.config,
        &["dispatcher", "dispatcher", "dispatcher", "scheduler", "scheduler"],
    );
    let ids = publish_orders(&env, "fleet", 0..EVENTS).await;

    let done = eventually(WAIT, || async {
        count(&env, "SELECT count(*) FROM deliveries WHERE state = 'succeeded'").await == 2 * EVENTS as i64
    })
    .await;
    fleet.assert_running();
    assert!(done, "every delivery succeeded");
    // Give a duplicate (a retry fired twice) the time to show up before counting.
    let attempts = settled(&env, "SELECT count(*) FROM attempts", Duration::from_secs(3)).await;

    assert_eq!(attempts, 3 * EVENTS as i64, "ok once, flaky twice per event");
    let ok = seen.per_event("/ok", None);
    let first = seen.per_event("/flaky", Some(1));
    let retry = seen.per_event("/flaky", Some(2));
    for id in &ids {
        assert_eq!(ok.get(id), Some(&1), "{id} reached /ok exactly once");
        assert_eq!(first.get(id), Some(&1), "{id}: one first attempt on /flaky");
        assert_eq!(retry.get(id), Some(&1), "{id}: its retry fired exactly once");
    }
    assert_eq!(seen.all().len(), 3 * EVENTS, "no other request");
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM attempts WHERE trigger = 'automatic' AND status = 'success'"
        )
        .await,
        EVENTS as i64
    );
    fleet.sigterm_all_exit_0(Duration::from_secs(15)).await;
    drop(fleet);
    env.cleanup().await;
}

#[tokio::test]
async fn killing_a_dispatcher_and_a_scheduler_with_sigkill_loses_nothing() {
    const EVENTS: usize = 600;
    let env = TestEnv::new().await;
    let (_, seen) = ok_and_flaky(&env).await;
    let mut fleet = Fleet::new(&RETRY_AT_ONCE);
    let d0 = fleet.start(&env.config, "dispatcher");
    for role in ["dispatcher", "dispatcher"] {
        fleet.start(&env.config, role);
    }
    let s0 = fleet.start(&env.config, "scheduler");
    fleet.start(&env.config, "scheduler");
    let ids = publish_orders(&env, "kill", 0..EVENTS).await;

    // Kill a dispatcher mid-stream, then a scheduler while retries are firing.
    assert!(
        eventually(WAIT, || async { seen.all().len() >= EVENTS / 2 }).await,
        "traffic started"
    );
    fleet.sigkill(d0);
    assert!(
        eventually(WAIT, || async {
            seen.per_event("/flaky", Some(2)).len() >= EVENTS / 4
        })
        .await,
        "retries started"
    );
    fleet.sigkill(s0);

    let done = eventually(Duration::from_secs(180), || async {
        count(&env, "SELECT count(*) FROM deliveries WHERE state = 'succeeded'").await == 2 * EVENTS as i64
    })
    .await;
    let states: Vec<(String, i64)> = sqlx::query_as("SELECT state, count(*) FROM deliveries GROUP BY state")
        .fetch_all(&env.db)
        .await
        .expect("states");
    assert!(
        done,
        "every delivery succeeded despite the kills; states: {states:?}"
    );
    assert_eq!(count(&env, "SELECT count(*) FROM events").await, EVENTS as i64);
    let ok = seen.per_event("/ok", None);
    let retry = seen.per_event("/flaky", Some(2));
    for id in &ids {
        assert!(ok.contains_key(id), "{id} reached /ok");
        assert!(retry.contains_key(id), "{id}'s retry reached /flaky");
    }
    // At-least-once: only attempts in flight in the killed dispatcher may be sent twice.
    let repeats: usize = ok.values().chain(retry.values()).map(|n| n - 1).sum();
    eprintln!(
        "sigkill test: {repeats} repeated requests out of {}",
        seen.all().len()
    );
    assert!(
        repeats <= EVENTS,
        "repeats are bounded by what one dispatcher held: {repeats}"
    );
    drop(fleet);
    env.cleanup().await;
}

#[tokio::test]
async fn a_dispatcher_stopped_by_sigterm_under_load_exits_0_within_the_grace_and_loses_nothing() {
    const EVENTS: usize = 200;
    let env = TestEnv::new().await;
    let (base, seen) = start_receiver();
    order_webhook(&env, "slow", format!("{base}/slow")).await;
    // 20 slots against 200 slow requests: at SIGTERM some attempts are in flight (to finish)
    // and most events are not started yet (to hand back).
    let mut fleet = Fleet::new(&[("HOOKRELAY_DISPATCH_CONCURRENCY", "20")]);
    let d = fleet.start(&env.config, "dispatcher");
    let ids = publish_orders(&env, "term", 0..EVENTS).await;
    assert!(
        eventually(WAIT, || async { !seen.all().is_empty() }).await,
        "requests in flight"
    );

    let grace = Duration::from_secs(10);
    let started = std::time::Instant::now();
    let at_sigterm = seen.all().len();
    // 2 s of slack for process exit on a loaded machine.
    let status = fleet.sigterm(d, grace + Duration::from_secs(2)).await;
    let took = started.elapsed();
    let after_sigterm = seen.all().len() - at_sigterm;
    // Stop taking new work: only attempts that had a slot (20) may still start (a race with
    // the signal); the rest are handed back, not started during the grace.
    assert!(
        after_sigterm <= 20,
        "{after_sigterm} requests started after SIGTERM (concurrency 20): new work was taken"
    );
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "SIGTERM: exit 0 within the {grace:?} grace (waited {took:?})"
    );
    // What reached the receiver before the exit is recorded, or will be sent again.
    let before: BTreeSet<String> = seen.all().into_iter().map(|(_, id, _)| id).collect();
    let recorded_before: BTreeSet<String> =
        sqlx::query_scalar::<_, String>("SELECT DISTINCT event_id FROM attempts")
            .fetch_all(&env.db)
            .await
            .expect("attempts")
            .into_iter()
            .collect();

    fleet.start(&env.config, "dispatcher");
    fleet.start(&env.config, "scheduler");
    let done = eventually(WAIT, || async {
        count(&env, "SELECT count(*) FROM deliveries WHERE state = 'succeeded'").await == EVENTS as i64
    })
    .await;
    fleet.assert_running();
    assert!(done, "every delivery succeeded after the restart");
    let after = seen.per_event("/slow", None);
    for id in &before {
        assert!(
            recorded_before.contains(id) || after.get(id).copied().unwrap_or(0) > 1,
            "{id} was in flight at SIGTERM: neither recorded nor sent again"
        );
    }
    for id in &ids {
        assert!(after.contains_key(id), "{id} delivered");
    }
    eprintln!(
        "sigterm test: exited in {took:?}; {} of {EVENTS} reached the receiver before, {} recorded",
        before.len(),
        recorded_before.len()
    );
    drop(fleet);
    env.cleanup().await;
}
