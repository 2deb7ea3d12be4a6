//! What a payload filter costs the fan-out: `TargetCache::matching` for one event and one
//! subscribed webhook, without a filter and with one (the body is parsed once for it), on a
//! typical event and on a 4 KiB one. Run: `cargo run --release -p hookrelay-dispatcher
//! --example filter_cost`. Figures are in docs/webhook-options.md.

use std::time::Instant;

use hookrelay_dispatcher::targets::TargetCache;
use hookrelay_shared::{
    event::parse_event,
    webhooks::{Target, Webhook},
};
use serde_json::json;
use time::OffsetDateTime;

const ROUNDS: u32 = 200_000;

fn target(filter: Option<serde_json::Value>) -> Target {
    let now = OffsetDateTime::now_utc();
    Target {
        webhook: Webhook {
            id: uuid::Uuid::now_v7(),
            name: "bench".into(),
            url: "http://127.0.0.1:9/".into(),
            event_types: vec!["license.*".into()],
            enabled: true,
            retry_policy: None,
            max_in_flight: 32,
            rate_limit: None,
            disabled_reason: None,
            disabled_at: None,
            filter,
            headers: Default::default(),
            signature_scheme: Default::default(),
            ordering: Default::default(),
            public_key: None,
            created_at: now,
            updated_at: now,
        },
        keys: Default::default(),
    }
}

fn per_event(cache: &TargetCache, event_type: &str, body: &str) -> f64 {
    let mut matched = 0usize;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        matched += std::hint::black_box(cache.matching(event_type, std::hint::black_box(body))).len();
    }
    let ns = started.elapsed().as_nanos() as f64 / f64::from(ROUNDS);
    assert!(matched > 0, "the benchmark event matches");
    ns
}

fn main() {
    let filter = json!({
        "type": ["license.assigned", "license.revoked"],
        "data.plan": {"$ne": "free"},
        "data.seats": {"$gte": 5},
        "data.customer.region": {"$prefix": "eu-"}
    });
    let plain = TargetCache::with_targets(vec![target(None)]);
    let filtered = TargetCache::with_targets(vec![target(Some(filter))]);
    let small = json!({"id": "evt_bench", "type": "license.assigned", "data": {
        "license_id": "lic_01JABCDEF", "plan": "pro", "seats": 12,
        "customer": {"id": "cus_42", "email": "ops@example.com", "region": "eu-west"}}});
    let mut big_data = small["data"].clone();
    big_data["notes"] = json!(
        (0..40)
            .map(|i| format!("note {i}: {}", "x".repeat(80)))
            .collect::<Vec<_>>()
    );
    let big = json!({"id": "evt_bench_big", "type": "license.assigned", "data": big_data});
    for (name, raw) in [("typical (260 B)", small), ("large (4 KiB)", big)] {
        let event =
            parse_event(raw.to_string().as_bytes(), 1 << 20, OffsetDateTime::now_utc()).expect("event");
        let a = per_event(&plain, &event.event_type, &event.body);
        let b = per_event(&filtered, &event.event_type, &event.body);
        println!(
            "{name}, body {} bytes: no filter {a:.0} ns/event, with a 4-condition filter {b:.0} ns/event (+{:.0} ns)",
            event.body.len(),
            b - a
        );
    }
}
