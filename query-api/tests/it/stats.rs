//! Endpoint health stats: `GET /api/v1/webhooks/{id}/stats` and the 24 h summary of the list,
//! from rollup rows written as the recorder writes them (two shards), and end to end from a
//! real dispatcher's attempts.

use std::time::Duration;

use hookrelay_shared::{
    stats::{Rollup, bucket_of, bucket_value},
    stats_store,
    testing::{Receiver, Reply},
};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{Api, webhook};

const WAIT: Duration = Duration::from_secs(30);

fn ago(d: time::Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() - d
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// What the route reports for a true response time of `ms`.
fn reported(ms: u64) -> f64 {
    bucket_value(bucket_of(ms))
}

#[tokio::test]
async fn stats_count_a_known_set_of_attempts_per_window_with_their_percentiles() {
    let api = Api::start().await;
    let hook = webhook(&api.env, "Known", "http://127.0.0.1:9/k", &["*"]).await;
    let other = webhook(&api.env, "Other", "http://127.0.0.1:9/o", &["*"]).await;
    // Two processes' shards, as two dispatcher replicas would write them.
    let (mut a, mut b) = (Rollup::default(), Rollup::default());
    let recent = ago(time::Duration::minutes(10));
    for ms in 1..=100u64 {
        let shard = if ms % 2 == 0 { &mut a } else { &mut b };
        // 90 successes, 10 failures (the slowest ten).
        shard.add(
            hook,
            ms <= 90,
            recent + time::Duration::milliseconds(ms as i64),
            ms,
        );
    }
    let hours_ago = ago(time::Duration::hours(3));
    for _ in 0..50 {
        a.add(hook, false, hours_ago, 200);
    }
    let days_ago = ago(time::Duration::days(3));
    for _ in 0..20 {
        b.add(hook, true, days_ago, 1000);
    }
    for _ in 0..5 {
        a.add(hook, true, ago(time::Duration::days(8)), 3);
    }
    a.add(other, true, recent, 7);
    stats_store::upsert(&api.env.db, 1, &a).await.expect("upsert a");
    stats_store::upsert(&api.env.db, 2, &b).await.expect("upsert b");
    // A second flush of the same shard adds to its rows.
    let mut again = Rollup::default();
    again.add(other, false, recent, 9);
    stats_store::upsert(&api.env.db, 1, &again)
        .await
        .expect("upsert again");

    let stats = |w: &'static str| {
        let api = &api;
        async move {
            let res = api
                .get(&format!("/api/v1/webhooks/{hook}/stats?window={w}"))
                .await;
            assert_eq!(res.status, 200, "{w}: {}", res.text);
            res.body
        }
    };
    let h = stats("1h").await;
    assert_eq!(
        (
            h["attempts"].as_u64(),
            h["succeeded"].as_u64(),
            h["failed"].as_u64()
        ),
        (Some(100), Some(90), Some(10))
    );
    assert_eq!(f(&h["success_rate"]), 0.9);
    assert_eq!(f(&h["response_ms"]["p50"]), reported(50));
    assert_eq!(f(&h["response_ms"]["p95"]), reported(95));
    assert_eq!(f(&h["response_ms"]["p99"]), reported(99));
    for (q, exact) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0)] {
        let got = f(&h["response_ms"][q]);
        assert!(
            (got - exact).abs() / exact <= 0.0625,
            "{q}: {got} against {exact}"
        );
    }
    assert_eq!(h["window"], "1h");
    assert_eq!(h["circuit"], "closed");
    let last_ok = OffsetDateTime::parse(
        h["last_success_at"].as_str().expect("last success"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    let last_fail = OffsetDateTime::parse(
        h["last_failure_at"].as_str().expect("last failure"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    assert!(
        (last_ok - (recent + time::Duration::milliseconds(90))).abs() < time::Duration::milliseconds(2),
        "{last_ok}"
    );
    assert!(
        (last_fail - (recent + time::Duration::milliseconds(100))).abs() < time::Duration::milliseconds(2),
        "{last_fail}"
    );

    let d = stats("24h").await;
    assert_eq!(
        (
            d["attempts"].as_u64(),
            d["succeeded"].as_u64(),
            d["failed"].as_u64()
        ),
        (Some(150), Some(90), Some(60))
    );
    assert_eq!(f(&d["success_rate"]), 0.6);
    // 100 at 1..100 ms and 50 at 200 ms: the 75th is 75 ms, the 143rd and 149th 200 ms.
    assert_eq!(f(&d["response_ms"]["p50"]), reported(75));
    assert_eq!(f(&d["response_ms"]["p95"]), reported(200));
    assert_eq!(f(&d["response_ms"]["p99"]), reported(200));

    let w = stats("7d").await;
    assert_eq!(
        (w["attempts"].as_u64(), w["succeeded"].as_u64()),
        (Some(170), Some(110)),
        "the 8-day-old ones are out"
    );
    assert_eq!(f(&w["response_ms"]["p99"]), reported(1000));
    assert_eq!(
        w["last_success_at"].as_str().map(|s| s.len()),
        h["last_success_at"].as_str().map(|s| s.len())
    );

    // The list carries the 24 h summary of every webhook on the page.
    let res = api.get("/api/v1/webhooks").await;
    assert_eq!(res.status, 200, "{}", res.text);
    let items = res.body["items"].as_array().expect("items");
    let of = |id: Uuid| items.iter().find(|i| i["id"] == id.to_string()).expect("listed")["health"].clone();
    assert_eq!(of(hook)["attempts"], 150);
    assert_eq!(f(&of(hook)["success_rate"]), 0.6);
    assert_eq!(of(hook)["circuit"], "closed");
    assert_eq!(of(other)["attempts"], 2);
    assert_eq!(f(&of(other)["success_rate"]), 0.5);
    let one = api.get(&format!("/api/v1/webhooks/{hook}")).await;
    assert_eq!(one.body["health"]["attempts"], 150, "{}", one.text);

    // A webhook without attempts: zeros and nulls.
    let quiet = webhook(&api.env, "Quiet", "http://127.0.0.1:9/q", &["*"]).await;
    let q = api.get(&format!("/api/v1/webhooks/{quiet}/stats")).await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.body["window"], "24h", "24h by default");
    assert_eq!(q.body["attempts"], 0);
    assert!(q.body["success_rate"].is_null() && q.body["response_ms"]["p50"].is_null());
    assert!(q.body["last_success_at"].is_null() && q.body["last_failure_at"].is_null());
    api.stop().await;
}

#[tokio::test]
async fn stats_need_an_admin_a_known_webhook_and_a_known_window() {
    let api = Api::start().await;
    let hook = webhook(&api.env, "Roles", "http://127.0.0.1:9/r", &["*"]).await;
    let path = format!("/api/v1/webhooks/{hook}/stats?window=1h");
    api.call(Method::GET, &path, None, None)
        .await
        .assert_problem(401, "token");
    api.call(Method::GET, &path, Some(&api.viewer.clone()), None)
        .await
        .assert_problem(403, "admin");
    for token in [api.admin.clone(), api.owner.clone()] {
        let res = api.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(res.status, 200, "{}", res.text);
    }
    for bad in ["2h", "", "7D", "1h%27%20OR%201=1"] {
        api.get(&format!("/api/v1/webhooks/{hook}/stats?window={bad}"))
            .await
            .assert_problem(400, "window");
    }
    let missing = Uuid::now_v7();
    api.get(&format!("/api/v1/webhooks/{missing}/stats"))
        .await
        .assert_problem(404, &missing.to_string());
    api.get("/api/v1/webhooks/nope/stats")
        .await
        .assert_problem(400, "id");
    api.stop().await;
}

#[tokio::test]
async fn a_real_dispatchers_attempts_show_in_the_stats_as_in_the_log() {
    let api = Api::start().await;
    // Every third request fails; the others answer after a few milliseconds.
    let receiver = Receiver::start_with(|n| {
        if n % 3 == 2 {
            Reply::status(500, "no")
        } else {
            Reply::sleep(Duration::from_millis((n % 7) as u64 * 3))
        }
    })
    .await;
    let created = api
        .post(
            "/api/v1/webhooks",
            Some(
                &json!({"name": "Live", "url": receiver.url("/"), "event_types": ["*"],
                "retry_policy": {"max_retries": 0, "window": "1m"}}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = Uuid::parse_str(created.body["id"].as_str().expect("id")).expect("uuid");
    let stop = CancellationToken::new();
    let dispatcher = tokio::spawn(hookrelay_dispatcher::run(api.env.context(), stop.clone()));
    let ch = api.env.channel().await;
    for i in 0..30 {
        let body = json!({"id": format!("evt_live_{i}"), "type": "license.assigned", "data": {}}).to_string();
        api.env
            .publish_raw(&ch, "license.assigned", body.as_bytes())
            .await;
    }
    assert!(receiver.wait_for(30, WAIT).await, "the events were delivered");
    let exact = || async {
        sqlx::query_as::<_, (i64, i64, Option<i32>, Option<i32>, Option<i32>)>(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success'),
                percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms),
                percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms),
                percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms)
             FROM attempts WHERE webhook_id = $1",
        )
        .bind(id)
        .fetch_one(&api.env.db)
        .await
        .expect("attempts")
    };
    let mut tries = 0;
    let (truth, body) = loop {
        let truth = exact().await;
        let body = api
            .get(&format!("/api/v1/webhooks/{id}/stats?window=1h"))
            .await
            .body;
        tries += 1;
        if (truth.0 == 30 && body["attempts"] == truth.0) || tries > 100 {
            break (truth, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(truth.0, 30, "one attempt per event");
    assert_eq!(body["attempts"], truth.0, "{body}");
    assert_eq!(body["succeeded"], truth.1, "{body}");
    assert_eq!(body["failed"], truth.0 - truth.1, "{body}");
    assert_eq!(truth.0 - truth.1, 10, "every third failed");
    for (q, exact) in [("p50", truth.2), ("p95", truth.3), ("p99", truth.4)] {
        let exact = exact.expect("a percentile") as u64;
        assert_eq!(
            f(&body["response_ms"][q]),
            reported(exact),
            "{q}: exact {exact} ms; {body}"
        );
    }
    assert!(
        body["last_success_at"].is_string() && body["last_failure_at"].is_string(),
        "{body}"
    );
    stop.cancel();
    let _ = dispatcher.await;
    api.stop().await;
}
