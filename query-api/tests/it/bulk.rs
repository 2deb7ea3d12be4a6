//! Bulk retries as durable jobs (issue 11, items 7 and 8): the answer's counts, progress at
//! `GET /api/v1/deliveries/retry/{job_id}`, each delivery queued once across chunks and across
//! calls, disabled webhooks skipped and counted, a dead replica's job taken over, a broker
//! outage that loses nothing. The jobs are read back from the real `{ns}.deliveries` queue.

use std::{collections::HashSet, sync::Arc, time::Duration};

use hookrelay_query_api::{
    AppState,
    bulk::{self, JobFilter},
    deliveries::Filter,
};
use hookrelay_shared::{
    jobs::{DeliveryJob, Trigger},
    testing::TestEnv,
};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{Api, now_us, seed_attempt, seed_delivery, webhook};

/// Every job waiting on the deliveries queue (taken off it).
async fn drain_jobs(env: &TestEnv) -> Vec<DeliveryJob> {
    env.take_jobs(&env.channel().await).await
}

/// Webhook `live` with 5 failed deliveries (two failed attempts each, so a delivery spans
/// chunks), one succeeded delivery; webhook `off` (disabled) with 2 failed deliveries.
/// Returns (live webhook, off webhook, the 5 delivery ids).
async fn seed(env: &TestEnv) -> (Uuid, Uuid, HashSet<Uuid>) {
    let live = webhook(env, "Live", "http://127.0.0.1:9/live", &["*"]).await;
    let off = webhook(env, "Off", "http://127.0.0.1:9/off", &["*"]).await;
    sqlx::query("UPDATE webhooks SET enabled = false WHERE id = $1")
        .bind(off)
        .execute(&env.db)
        .await
        .expect("disabled");
    let mut failed = HashSet::new();
    for i in 0..5i64 {
        let d = seed_delivery(env, live, "license.assigned", "failed").await;
        seed_attempt(
            env,
            &d,
            "failed",
            Some(500),
            now_us() - time::Duration::minutes(40 - i),
        )
        .await;
        seed_attempt(
            env,
            &d,
            "failed",
            Some(503),
            now_us() - time::Duration::minutes(20 - i),
        )
        .await;
        failed.insert(d.id);
    }
    let ok = seed_delivery(env, live, "license.assigned", "succeeded").await;
    seed_attempt(
        env,
        &ok,
        "failed",
        Some(500),
        now_us() - time::Duration::minutes(30),
    )
    .await;
    seed_attempt(
        env,
        &ok,
        "success",
        Some(200),
        now_us() - time::Duration::minutes(10),
    )
    .await;
    for _ in 0..2 {
        let d = seed_delivery(env, off, "license.assigned", "failed").await;
        seed_attempt(
            env,
            &d,
            "failed",
            Some(500),
            now_us() - time::Duration::minutes(15),
        )
        .await;
    }
    (live, off, failed)
}

async fn wait_done(api: &Api, job_id: &str) -> Value {
    let path = format!("/api/v1/deliveries/retry/{job_id}");
    let mut last = Value::Null;
    for _ in 0..200 {
        let res = api.get(&path).await;
        assert_eq!(res.status, 200, "{}", res.text);
        last = res.body;
        if last["state"] == "done" {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job not done: {last}");
}

#[tokio::test]
async fn a_bulk_retry_is_a_job_that_queues_each_matching_delivery_once_and_says_what_it_skipped() {
    let api = Api::start().await;
    let (_live, _off, failed) = seed(&api.env).await;
    let res = api.post("/api/v1/deliveries/retry", Some(&json!({}))).await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.body["queued"], 5, "{}", res.text);
    assert_eq!(res.body["skipped_disabled"], 2, "{}", res.text);
    let job_id = res.body["job_id"].as_str().expect("job_id").to_owned();

    let job = wait_done(&api, &job_id).await;
    assert_eq!(job["queued"], 5, "{job}");
    assert_eq!(job["total"], 5, "{job}");
    assert_eq!(job["skipped_disabled"], 2, "{job}");
    assert!(
        job["finished_at"].is_string() && job["created_at"].is_string(),
        "{job}"
    );

    let jobs = drain_jobs(&api.env).await;
    assert_eq!(jobs.len(), 5, "one job per delivery: {jobs:?}");
    assert!(jobs.iter().all(|j| j.trigger == Trigger::Manual));
    let ids: HashSet<Uuid> = jobs.iter().map(|j| j.delivery_id).collect();
    assert_eq!(
        ids, failed,
        "exactly the failed deliveries of the enabled webhook"
    );

    // The same request again, before any of them was attempted: nothing is queued twice.
    let res = api.post("/api/v1/deliveries/retry", Some(&json!({}))).await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.body["queued"], 0, "{}", res.text);
    assert_eq!(res.body["skipped_queued"], 5, "{}", res.text);
    let again = wait_done(&api, res.body["job_id"].as_str().expect("job_id")).await;
    assert_eq!(again["queued"], 0, "{again}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(drain_jobs(&api.env).await.is_empty());

    api.get(&format!("/api/v1/deliveries/retry/{}", Uuid::now_v7()))
        .await
        .assert_problem(404, "job");
    api.get("/api/v1/deliveries/retry/nope")
        .await
        .assert_problem(400, "id");
    api.stop().await;
}

#[tokio::test]
async fn a_bulk_retry_takes_the_logs_q_and_event_type_filters() {
    let api = Api::start().await;
    let (live, _off, failed) = seed(&api.env).await;
    let other = webhook(&api.env, "Warehouse", "http://127.0.0.1:9/wh", &["*"]).await;
    let d = seed_delivery(&api.env, other, "product.created", "failed").await;
    seed_attempt(
        &api.env,
        &d,
        "failed",
        Some(500),
        now_us() - time::Duration::minutes(5),
    )
    .await;
    for (body, expect) in [
        (json!({"q": "warehouse"}), HashSet::from([d.id])),
        (json!({"q": "LIVE"}), failed.clone()),
        (json!({"event_type": "product.created"}), HashSet::from([d.id])),
        (json!({"q": "no such thing"}), HashSet::new()),
    ] {
        let res = api.post("/api/v1/deliveries/retry", Some(&body)).await;
        assert_eq!(res.status, 202, "{body}: {}", res.text);
        assert_eq!(res.body["queued"], expect.len(), "{body}: {}", res.text);
        wait_done(&api, res.body["job_id"].as_str().expect("job_id")).await;
        let ids: HashSet<Uuid> = drain_jobs(&api.env).await.iter().map(|j| j.delivery_id).collect();
        assert_eq!(ids, expect, "{body}");
        // Forget the marks so the next case may queue the same deliveries again.
        sqlx::query("DELETE FROM bulk_retry_items")
            .execute(&api.env.db)
            .await
            .expect("reset");
    }
    let _ = live;
    api.stop().await;
}

fn state_with_amqp(env: &TestEnv, amqp_url: Option<&str>, chunk: i64) -> AppState {
    let mut ctx = env.context();
    if let Some(url) = amqp_url {
        let mut config = (*ctx.config).clone();
        config.amqp_url = url.into();
        ctx.config = Arc::new(config);
    }
    let mut state = AppState::new(ctx);
    state.bulk_chunk = chunk;
    state
}

async fn new_job(env: &TestEnv) -> Uuid {
    let f = JobFilter::new(
        &Filter {
            status: Some("failed"),
            ..Default::default()
        },
        None,
        OffsetDateTime::now_utc(),
    );
    let counts = bulk::count(&env.db, &f).await.expect("count");
    assert_eq!(counts.total, 5);
    bulk::create(&env.db, &f, counts, Uuid::nil()).await.expect("job")
}

#[tokio::test]
async fn a_job_held_by_a_dead_replica_is_taken_over_when_its_lease_ends_and_finished_in_chunks() {
    let env = TestEnv::new().await;
    let (_, _, failed) = seed(&env).await;
    let job = new_job(&env).await;
    // Another replica claimed it and died after the first chunk.
    sqlx::query(
        "UPDATE bulk_retry_jobs SET state = 'running', lease_owner = $2, lease_until = now() + interval '30 seconds'
         WHERE id = $1",
    )
    .bind(job)
    .bind(Uuid::now_v7())
    .execute(&env.db)
    .await
    .expect("claimed elsewhere");
    let state = state_with_amqp(&env, None, 2);
    let stop = CancellationToken::new();
    let me = Uuid::now_v7();
    assert!(
        !bulk::run_one(&state, me, &stop).await.expect("runs"),
        "a live lease is respected"
    );
    sqlx::query("UPDATE bulk_retry_jobs SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(job)
        .execute(&env.db)
        .await
        .expect("lease ran out");
    assert!(bulk::run_one(&state, me, &stop).await.expect("runs"));
    let row = bulk::get(&env.db, job).await.expect("read").expect("job");
    assert_eq!(row.state, "done");
    assert_eq!(row.queued, 5);
    // 12 failed attempts in chunks of 2: each delivery once although it spans two chunks.
    let ids: Vec<Uuid> = drain_jobs(&env).await.iter().map(|j| j.delivery_id).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), failed);
    assert!(
        !bulk::run_one(&state, me, &stop).await.expect("runs"),
        "nothing left"
    );
    state.publisher.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_broker_outage_during_a_job_loses_nothing_and_the_job_finishes_afterwards() {
    let env = TestEnv::new().await;
    let (_, _, failed) = seed(&env).await;
    let job = new_job(&env).await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let down = state_with_amqp(&env, Some(&format!("amqp://guest:guest@127.0.0.1:{port}/%2f")), 2);
    let stop = CancellationToken::new();
    assert!(bulk::run_one(&down, Uuid::now_v7(), &stop).await.expect("runs"));
    let row = bulk::get(&env.db, job).await.expect("read").expect("job");
    assert_eq!(row.state, "running", "still open");
    assert_eq!(row.queued, 0);
    assert!(row.error.is_some(), "the error is shown");

    // RabbitMQ is back; after the back-off any worker finishes the job.
    sqlx::query("UPDATE bulk_retry_jobs SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(job)
        .execute(&env.db)
        .await
        .expect("back-off over");
    let up = state_with_amqp(&env, None, 2);
    assert!(bulk::run_one(&up, Uuid::now_v7(), &stop).await.expect("runs"));
    let row = bulk::get(&env.db, job).await.expect("read").expect("job");
    assert_eq!(row.state, "done");
    assert_eq!(row.queued, 5);
    assert!(row.error.is_none());
    let ids: Vec<Uuid> = drain_jobs(&env).await.iter().map(|j| j.delivery_id).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(ids.into_iter().collect::<HashSet<_>>(), failed);
    up.publisher.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_manual_retry_of_a_disabled_webhooks_delivery_is_a_409_problem() {
    let api = Api::start().await;
    let (live, off, _) = seed(&api.env).await;
    let admin = api.admin.clone();
    let off_item = api.all_pages(&format!("webhook_id={off}"), 200).await;
    let attempt = off_item[0]["id"].as_str().expect("id").to_owned();
    let delivery = off_item[0]["delivery_id"]
        .as_str()
        .expect("delivery_id")
        .to_owned();
    for id in [&attempt, &delivery] {
        api.post(&format!("/api/v1/deliveries/{id}/retry"), None)
            .await
            .assert_problem(409, "disabled");
    }
    // A deleted webhook's delivery too.
    let live_item = api
        .all_pages(&format!("webhook_id={live}&status=failed"), 200)
        .await;
    api.call(
        Method::DELETE,
        &format!("/api/v1/webhooks/{live}"),
        Some(&admin),
        None,
    )
    .await;
    api.post(
        &format!(
            "/api/v1/deliveries/{}/retry",
            live_item[0]["id"].as_str().expect("id")
        ),
        None,
    )
    .await
    .assert_problem(409, "deleted");
    assert!(drain_jobs(&api.env).await.is_empty(), "nothing was queued");
    api.stop().await;
}
