//! The delivery log: every filter alone and combined, every sort key in both orders, and
//! keyset pagination that returns each attempt exactly once while new attempts arrive.

use std::collections::{HashMap, HashSet};

use time::Duration;
use uuid::Uuid;

use crate::support::{Api, SeededAttempt, ids, now_us, seed_attempt, seed_delivery, webhook};

/// A log of 48 attempts over three webhooks, three event types (two categories), both
/// statuses, four response codes and no response at all, one minute apart.
async fn seed_log(api: &Api) -> (Vec<SeededAttempt>, [Uuid; 3]) {
    let env = &api.env;
    let hooks = [
        webhook(env, "Billing", "http://billing.example.test/hooks", &["*"]).await,
        webhook(
            env,
            "CRM sync",
            "https://crm.example.test/license-in",
            &["license.*"],
        )
        .await,
        webhook(env, "Audit 50%_off", "https://audit.example.test/x", &["*"]).await,
    ];
    let types = ["license.assigned", "license.revoked", "product.created"];
    let outcomes: [(&str, Option<i32>); 5] = [
        ("success", Some(200)),
        ("failed", Some(500)),
        ("failed", None),
        ("success", Some(204)),
        ("failed", Some(404)),
    ];
    let start = now_us() - Duration::minutes(60);
    let mut out = vec![];
    for i in 0..48usize {
        let d = seed_delivery(env, hooks[i % 3], types[(i / 3) % 3], "failed").await;
        let (status, code) = outcomes[i % 5];
        // Pairs share a timestamp so ties are broken by id.
        let at = start + Duration::minutes((i / 2) as i64);
        out.push(seed_attempt(env, &d, status, code, at).await);
    }
    (out, hooks)
}

fn sort_key(a: &SeededAttempt, sort: &str) -> (String, i64, time::OffsetDateTime, Uuid) {
    match sort {
        "status" => (a.status.to_owned(), 0, a.attempted_at, a.id),
        "response_code" => (
            String::new(),
            i64::from(a.response_code.unwrap_or(0)),
            a.attempted_at,
            a.id,
        ),
        _ => (String::new(), 0, a.attempted_at, a.id),
    }
}

fn expected_order(seeded: &[SeededAttempt], sort: &str, desc: bool) -> Vec<Uuid> {
    let mut v: Vec<&SeededAttempt> = seeded.iter().collect();
    v.sort_by_key(|a| sort_key(a, sort));
    if desc {
        v.reverse();
    }
    v.iter().map(|a| a.id).collect()
}

#[tokio::test]
async fn each_filter_alone_and_combined_returns_exactly_the_matching_attempts() {
    let api = Api::start().await;
    let (seeded, hooks) = seed_log(&api).await;
    for i in 0..33 {
        webhook(
            &api.env,
            &format!("Billing mirror {i}"),
            "https://mirror.example.test/",
            &["*"],
        )
        .await;
    }
    let mid = seeded[20].attempted_at;
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
            .replace('+', "%2B")
    };
    type Pred = Box<dyn Fn(&SeededAttempt) -> bool>;
    let h0 = hooks[0];
    let h1 = hooks[1];
    let cases: Vec<(String, Pred)> = vec![
        ("category=license".into(), Box::new(|a| a.category == "license")),
        (
            "event_type=license.revoked".into(),
            Box::new(|a| a.event_type == "license.revoked"),
        ),
        ("status=failed".into(), Box::new(|a| a.status == "failed")),
        ("status=success".into(), Box::new(|a| a.status == "success")),
        (format!("webhook_id={h0}"), Box::new(move |a| a.webhook_id == h0)),
        (
            "response_code=500".into(),
            Box::new(|a| a.response_code == Some(500)),
        ),
        (
            format!("since={}", fmt(mid)),
            Box::new(move |a| a.attempted_at >= mid),
        ),
        (
            format!("until={}", fmt(mid)),
            Box::new(move |a| a.attempted_at < mid),
        ),
        // q: webhook name (case-insensitive), URL, event type, and LIKE metacharacters literally.
        // 34 webhooks match "billing" (the mirrors have no attempts): more than 32, so this
        // runs as one `= ANY` scan instead of a branch per webhook.
        ("q=billing".into(), Box::new(move |a| a.webhook_id == h0)),
        ("q=billing.example".into(), Box::new(move |a| a.webhook_id == h0)),
        // Matches one webhook (by URL) and two event types: a UNION of three ordered scans.
        (
            "q=license".into(),
            Box::new(move |a| a.webhook_id == h1 || a.category == "license"),
        ),
        ("q=CRM.EXAMPLE".into(), Box::new(move |a| a.webhook_id == h1)),
        (
            "q=revoked".into(),
            Box::new(|a| a.event_type == "license.revoked"),
        ),
        ("q=50%25_off".into(), Box::new(move |a| a.webhook_id == hooks[2])),
        ("q=%25".into(), Box::new(move |a| a.webhook_id == hooks[2])),
        (
            "q=product".into(),
            Box::new(|a| a.event_type == "product.created"),
        ),
        ("q=nothing-matches-this".into(), Box::new(|_| false)),
        // q matching both a webhook and a type: an attempt matching both appears once.
        ("q=crm%20sync".into(), Box::new(move |a| a.webhook_id == h1)),
        // Combined.
        (
            format!("category=license&status=failed&webhook_id={h0}"),
            Box::new(move |a| a.category == "license" && a.status == "failed" && a.webhook_id == h0),
        ),
        (
            format!("status=success&since={}&response_code=200", fmt(mid)),
            Box::new(move |a| a.status == "success" && a.attempted_at >= mid && a.response_code == Some(200)),
        ),
        (
            "q=license&status=failed&event_type=license.assigned".into(),
            Box::new(|a| a.status == "failed" && a.event_type == "license.assigned"),
        ),
        (
            format!("q=billing&category=product&until={}", fmt(mid)),
            Box::new(move |a| a.webhook_id == h0 && a.category == "product" && a.attempted_at < mid),
        ),
    ];
    for (query, pred) in cases {
        let want: Vec<Uuid> = expected_order(&seeded, "attempted_at", true)
            .into_iter()
            .filter(|id| seeded.iter().any(|a| a.id == *id && pred(a)))
            .collect();
        let got = ids(&api.all_pages(&query, 7).await);
        assert_eq!(got, want, "filter {query}");
    }
    // A match on both the webhook and the event type is still listed once.
    let both = api.all_pages("q=e", 200).await;
    let unique: HashSet<Uuid> = ids(&both).into_iter().collect();
    assert_eq!(
        unique.len(),
        both.len(),
        "no duplicates for a q matching webhooks and types"
    );
    assert_eq!(both.len(), seeded.len());
    api.stop().await;
}

#[tokio::test]
async fn each_sort_key_in_both_orders_is_exact_across_pages() {
    let api = Api::start().await;
    let (seeded, _) = seed_log(&api).await;
    for sort in ["attempted_at", "status", "response_code"] {
        for order in ["desc", "asc"] {
            let got = ids(&api.all_pages(&format!("sort={sort}&order={order}"), 9).await);
            assert_eq!(
                got,
                expected_order(&seeded, sort, order == "desc"),
                "sort={sort}&order={order}"
            );
        }
    }
    // The default is attempted_at, newest first; items have the contract's shape.
    let res = api.get("/api/v1/deliveries?limit=1").await;
    let item = &res.body["items"][0];
    let newest = expected_order(&seeded, "attempted_at", true)[0];
    assert_eq!(item["id"], newest.to_string());
    let a = seeded.iter().find(|a| a.id == newest).expect("seeded");
    assert_eq!(item["delivery_id"], a.delivery_id.to_string());
    assert_eq!(item["webhook"]["id"], a.webhook_id.to_string());
    assert!(item["webhook"]["name"].is_string() && item["webhook"]["url"].is_string());
    assert_eq!(item["event_type"], a.event_type);
    assert_eq!(item["status"], a.status);
    assert_eq!(item["attempt"], 1);
    assert_eq!(item["trigger"], "initial");
    assert_eq!(item["duration_ms"], 12);
    let at = item["attempted_at"].as_str().expect("attempted_at");
    assert!(
        at.ends_with('Z') && at.len() == "2026-11-27T10:00:00.123Z".len(),
        "{at}"
    );
    assert!(res.body["next_cursor"].is_string());
    api.stop().await;
}

#[tokio::test]
async fn pagination_returns_every_attempt_exactly_once_while_new_attempts_arrive() {
    let api = Api::start().await;
    let (seeded, hooks) = seed_log(&api).await;
    let fresh = seed_delivery(&api.env, hooks[0], "license.assigned", "retrying").await;
    for sort in ["attempted_at", "status", "response_code"] {
        for order in ["desc", "asc"] {
            let mut seen: HashMap<Uuid, usize> = HashMap::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut path = format!("/api/v1/deliveries?limit=10&sort={sort}&order={order}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let res = api.get(&path).await;
                assert_eq!(res.status, 200, "{}", res.text);
                for id in ids(res.body["items"].as_array().expect("items")) {
                    *seen.entry(id).or_default() += 1;
                }
                pages += 1;
                // New attempts land between pages: now, and (out of order) in the past.
                let outcome = if pages % 2 == 0 {
                    ("success", Some(200))
                } else {
                    ("failed", None)
                };
                seed_attempt(&api.env, &fresh, outcome.0, outcome.1, now_us()).await;
                seed_attempt(
                    &api.env,
                    &fresh,
                    "failed",
                    Some(503),
                    now_us() - Duration::hours(3),
                )
                .await;
                match res.body["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
                assert!(pages < 100, "runaway pagination");
            }
            assert!(pages >= 3, "{sort} {order}: {pages} pages");
            for a in &seeded {
                assert_eq!(
                    seen.get(&a.id),
                    Some(&1),
                    "{sort} {order}: attempt {} seen {:?} times",
                    a.id,
                    seen.get(&a.id)
                );
            }
            assert!(
                seen.values().all(|n| *n == 1),
                "{sort} {order}: an item was repeated"
            );
        }
    }
    api.stop().await;
}
