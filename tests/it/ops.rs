//! The operations server (`/metrics`, `/healthz`, `/readyz`) of a dispatcher or scheduler: on
//! the real services, exact counter values after a known scenario, and `HOOKRELAY_METRICS_ADDR`
//! on the real binaries.

use std::time::Duration;

use hookrelay_shared::{
    ops,
    testing::{TestEnv, eventually},
};
use tokio_util::sync::CancellationToken;

use crate::{
    fleet::{Fleet, count, jobs_queued, order_webhook, publish_orders},
    receiver::start_receiver,
};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn the_operations_server_is_ready_when_every_service_is_up() {
    let env = TestEnv::new().await;
    let stop = CancellationToken::new();
    let (addr, task) = ops::spawn(env.context(), "127.0.0.1:0".parse().expect("addr"), stop.clone())
        .await
        .expect("binds");
    let resp = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("GET /readyz");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["down"], serde_json::json!([]));
    stop.cancel();
    task.await.expect("joins").expect("stops cleanly");
    env.cleanup().await;
}

/// Reads one sample's value from an OpenMetrics text (0 when absent).
fn sample(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name_and_labels)?
                .strip_prefix(' ')?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn after_a_known_scenario_the_metrics_have_exactly_the_expected_values() {
    let env = TestEnv::with(|c| {
        c.retry_schedule = Some(hookrelay_shared::duration::DurationList(vec![
            Duration::from_secs(1),
        ]));
        // Exact counts of attempts and retries: no circuit may open and defer some of them.
        c.circuit_failures = 1_000_000;
    })
    .await;
    let (base, _seen) = start_receiver();
    order_webhook(&env, "ok", format!("{base}/ok")).await;
    order_webhook(&env, "fail", format!("{base}/fail")).await;
    let stop = CancellationToken::new();
    let dispatcher = tokio::spawn(hookrelay_dispatcher::run(env.context(), stop.clone()));
    let scheduler = tokio::spawn(hookrelay_scheduler::run(env.context(), stop.clone()));
    let (addr, server) = ops::spawn(env.context(), "127.0.0.1:0".parse().expect("addr"), stop.clone())
        .await
        .expect("binds");

    publish_orders(&env, "metrics", 0..4).await;
    let ch = env.channel().await;
    env.publish_raw(&ch, "order.paid", b"{not json").await;
    env.publish_raw(&ch, "order.paid", br#"{"data": {}}"#).await;

    let scrape = || async move {
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body")
    };
    let quiet = eventually(WAIT, || async {
        let t = scrape().await;
        sample(&t, "hookrelay_deliveries_exhausted_total") == 4.0
            && sample(&t, r#"hookrelay_events_consumed_total{outcome="dead_lettered"}"#) == 2.0
    })
    .await;
    if !quiet {
        let rows: Vec<(String, i32, Option<time::OffsetDateTime>)> =
            sqlx::query_as("SELECT state, attempt_count, next_attempt_at FROM deliveries")
                .fetch_all(&env.db)
                .await
                .expect("deliveries");
        panic!(
            "the scenario did not complete: deliveries {rows:?}, {} jobs queued, now {}\n{}",
            jobs_queued(&env).await,
            time::OffsetDateTime::now_utc(),
            scrape().await
        );
    }
    let t = scrape().await;
    for (name, want) in [
        (r#"hookrelay_events_consumed_total{outcome="accepted"}"#, 4.0),
        (r#"hookrelay_events_consumed_total{outcome="dead_lettered"}"#, 2.0),
        (r#"hookrelay_events_consumed_total{outcome="duplicate"}"#, 0.0),
        ("hookrelay_deliveries_created_total", 8.0),
        (
            r#"hookrelay_delivery_attempts_total{status="success",trigger="initial",status_class="2xx"}"#,
            4.0,
        ),
        (
            r#"hookrelay_delivery_attempts_total{status="failed",trigger="initial",status_class="5xx"}"#,
            4.0,
        ),
        (
            r#"hookrelay_delivery_attempts_total{status="failed",trigger="automatic",status_class="5xx"}"#,
            4.0,
        ),
        ("hookrelay_delivery_duration_seconds_count", 12.0),
        ("hookrelay_retries_scheduled_total", 4.0),
        ("hookrelay_retry_lateness_seconds_count", 4.0),
        ("hookrelay_deliveries_exhausted_total", 4.0),
        ("hookrelay_deliveries_in_flight", 0.0),
    ] {
        assert_eq!(sample(&t, name), want, "{name} in\n{t}");
    }
    let dead: f64 = t
        .lines()
        .filter(|l| l.starts_with("hookrelay_events_dead_lettered_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(dead, 2.0, "two dead letters by reason in\n{t}");
    let attempts_total: f64 = t
        .lines()
        .filter(|l| l.starts_with("hookrelay_delivery_attempts_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(attempts_total, 12.0, "no other attempt in\n{t}");
    assert_eq!(
        count(&env, "SELECT count(*) FROM attempts").await,
        12,
        "the database agrees"
    );

    stop.cancel();
    for task in [dispatcher, scheduler, server] {
        task.await.expect("joins").expect("stops cleanly");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_dispatcher_and_a_scheduler_running_alone_serve_metrics_and_probes_on_hookrelay_metrics_addr() {
    let env = TestEnv::new().await;
    let (base, _seen) = start_receiver();
    order_webhook(&env, "ok", format!("{base}/ok")).await;
    let mut fleet = Fleet::new(&[("HOOKRELAY_METRICS_ADDR", "127.0.0.1:0")]);
    fleet.start_all(&env.config, &["dispatcher", "scheduler"]);
    let (dispatcher, scheduler) = (fleet.ops_url(0).await, fleet.ops_url(1).await);
    for url in [&dispatcher, &scheduler] {
        let health = reqwest::get(format!("{url}/healthz"))
            .await
            .expect("GET /healthz");
        assert_eq!(health.status(), 200, "{url}/healthz");
        let ready = reqwest::get(format!("{url}/readyz")).await.expect("GET /readyz");
        assert_eq!(ready.status(), 200, "{url}/readyz");
    }
    publish_orders(&env, "alone", 0..3).await;
    let scrape = |url: String| async move {
        reqwest::get(format!("{url}/metrics"))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("body")
    };
    let counted = eventually(WAIT, || async {
        sample(
            &scrape(dispatcher.clone()).await,
            r#"hookrelay_delivery_attempts_total{status="success",trigger="initial",status_class="2xx"}"#,
        ) == 3.0
    })
    .await;
    let text = scrape(dispatcher.clone()).await;
    assert!(counted, "the dispatcher process counted its 3 attempts:\n{text}");
    assert_eq!(
        sample(&text, r#"hookrelay_events_consumed_total{outcome="accepted"}"#),
        3.0,
        "{text}"
    );
    assert!(
        scrape(scheduler.clone())
            .await
            .contains("hookrelay_retries_pending "),
        "the scheduler exports its backlog"
    );
    fleet.sigterm_all_exit_0(Duration::from_secs(15)).await;
    drop(fleet);
    env.cleanup().await;
}
