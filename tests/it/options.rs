//! End-to-end tests of the per-webhook delivery options (issue 13): the real `hookrelay
//! dispatcher` process against real services and a receiver on 127.0.0.1.

use std::{collections::HashSet, process::Child, time::Duration};

use hookrelay_shared::{
    testing::{Receiver, TestEnv, eventually},
    webhooks::{self, NewWebhook, Webhook},
};
use serde_json::{Value, json};

use crate::{fleet::publish_events, support};

async fn hook(env: &TestEnv, url: &str, adjust: impl FnOnce(&mut NewWebhook)) -> Webhook {
    let mut new = NewWebhook {
        name: "options".into(),
        url: url.into(),
        event_types: vec!["order.*".into()],
        enabled: true,
        ..Default::default()
    };
    adjust(&mut new);
    new.validate(true).expect("valid webhook");
    webhooks::create(&env.db, new).await.expect("webhook").0
}

fn dispatcher(env: &TestEnv) -> Child {
    support::command(&env.config, &["dispatcher"])
        .env("HOOKRELAY_DELIVERY_TIMEOUT", "2s")
        .spawn()
        .expect("hookrelay starts")
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn ids(rx: &Receiver) -> HashSet<String> {
    rx.received()
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect()
}

async fn deliveries_of(env: &TestEnv, webhook: &Webhook) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE webhook_id = $1")
        .bind(webhook.id)
        .fetch_one(&env.db)
        .await
        .expect("count")
}

#[tokio::test]
async fn a_filtered_webhook_gets_only_the_matching_events_and_no_deliveries_for_the_rest() {
    let env = TestEnv::new().await;
    let (filtered_rx, plain_rx) = (Receiver::start().await, Receiver::start().await);
    let filtered = hook(&env, &filtered_rx.url("/"), |w| {
        w.filter = Some(json!({
            "type": ["order.paid", "order.refunded"],
            "data.plan": {"$ne": "free"},
            "data.seats": {"$gte": 5},
            "data.customer.region": {"$prefix": "eu-"},
        }));
    })
    .await;
    let plain = hook(&env, &plain_rx.url("/"), |_| {}).await;

    let plans = ["free", "pro", "team"];
    let regions = ["eu-west", "us-east"];
    let types = ["order.paid", "order.created", "order.refunded"];
    let mut events = Vec::new();
    let mut want = HashSet::new();
    for i in 0..120usize {
        let (plan, region, t, seats) = (plans[i % 3], regions[i / 3 % 2], types[i / 6 % 3], i % 10);
        let id = format!("evt_filter_{i}");
        if t != "order.created" && plan != "free" && seats >= 5 && region.starts_with("eu-") {
            want.insert(id.clone());
        }
        events.push((
            id,
            t,
            json!({"plan": plan, "seats": seats, "customer": {"region": region}}),
        ));
    }
    assert!(!want.is_empty() && want.len() < events.len());
    let child = dispatcher(&env);
    publish_events(&env, &events).await;
    let all = plain_rx.wait_for(events.len(), Duration::from_secs(60)).await;
    // The filtered webhook's deliveries were made in the same batches as the plain one's.
    let got_all = eventually(Duration::from_secs(10), || async {
        filtered_rx.count() >= want.len()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(child);
    assert!(
        all,
        "the unfiltered webhook got every event ({})",
        plain_rx.count()
    );
    assert!(got_all, "the filtered webhook got its {} events", want.len());
    assert_eq!(ids(&filtered_rx), want, "exactly the matching events, each once");
    assert_eq!(filtered_rx.count(), want.len());
    assert_eq!(
        deliveries_of(&env, &filtered).await,
        want.len() as i64,
        "no delivery for the rest"
    );
    assert_eq!(deliveries_of(&env, &plain).await, events.len() as i64);
    env.cleanup().await;
}

#[tokio::test]
async fn a_filter_changed_through_patch_applies_to_the_next_events() {
    let env = TestEnv::new().await;
    let rx = Receiver::start().await;
    let w = hook(&env, &rx.url("/"), |w| w.filter = Some(json!({"data.n": 1}))).await;
    let child = dispatcher(&env);
    publish_events(
        &env,
        &[
            ("evt_p_1".into(), "order.paid", json!({"n": 1})),
            ("evt_p_2".into(), "order.paid", json!({"n": 2})),
        ],
    )
    .await;
    assert!(rx.wait_for(1, Duration::from_secs(30)).await);
    let patch = webhooks::WebhookPatch {
        filter: Some(Some(json!({"data.n": {"$gt": 1}}))),
        ..Default::default()
    };
    webhooks::update(&env.db, w.id, patch).await.expect("patched");
    // The NOTIFY reload is quick but asynchronous: wait until the new filter takes effect.
    let mut i = 3;
    let changed = eventually(Duration::from_secs(30), || {
        i += 1;
        let env = &env;
        let rx = &rx;
        let id = format!("evt_p_{i}");
        async move {
            publish_events(env, &[(id.clone(), "order.paid", json!({"n": 5}))]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            ids(rx).contains(&id)
        }
    })
    .await;
    kill(child);
    assert!(changed, "the new filter lets n = 5 through");
    let got = ids(&rx);
    assert!(got.contains("evt_p_1") && !got.contains("evt_p_2"), "{got:?}");
    env.cleanup().await;
}

#[tokio::test]
async fn custom_headers_reach_the_receiver_and_are_stored_and_logged_redacted() {
    let env = TestEnv::new().await;
    let rx = Receiver::start().await;
    let secret = "k_live_7f3a9c_do_not_log";
    let w = hook(&env, &rx.url("/"), |w| {
        w.headers = Some(json!({"X-Api-Key": secret, "Authorization": "Bearer tok_9d2e_do_not_log"}));
    })
    .await;
    assert!(
        !format!("{w:?}").contains(secret),
        "Debug of a webhook hides the values"
    );
    assert_eq!(
        serde_json::to_value(&w).expect("json")["headers"]["x-api-key"],
        "***"
    );
    let mut child = support::command(&env.config, &["dispatcher"])
        .env(
            "RUST_LOG",
            "info,hookrelay=debug,hookrelay_dispatcher=debug,hookrelay_shared=debug",
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("hookrelay starts");
    publish_events(&env, &[("evt_headers_1".into(), "order.paid", json!({}))]).await;
    let got = rx.wait_for(1, Duration::from_secs(30)).await;
    let stored = eventually(Duration::from_secs(10), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM attempts")
            .fetch_one(&env.db)
            .await
            .unwrap_or(0)
            == 1
    })
    .await;
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    assert!(got && stored, "delivered and recorded");
    let r = &rx.received()[0];
    assert_eq!(r.header("x-api-key"), Some(secret));
    assert_eq!(r.header("authorization"), Some("Bearer tok_9d2e_do_not_log"));
    assert_eq!(
        r.header("webhook-id"),
        Some("evt_headers_1"),
        "the contract's headers are intact"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let headers: Value = sqlx::query_scalar("SELECT request_headers FROM attempts")
        .fetch_one(&env.db)
        .await
        .expect("attempt");
    assert_eq!(headers["x-api-key"], "***", "{headers}");
    assert_eq!(headers["authorization"], "***", "{headers}");
    assert_eq!(headers["webhook-id"], "evt_headers_1");
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logs.contains("consuming events"), "the logs were captured");
    assert!(!logs.contains("do_not_log"), "no header value in the logs");
    env.cleanup().await;
}

/// One `v1a` check for the independent verifier: does any `v1a` entry of `header` verify
/// under `public_key` (`whpk_…`) for `{id}.{timestamp}.{body}`?
struct V1aCase<'a> {
    public_key: &'a str,
    id: &'a str,
    timestamp: &'a str,
    body: &'a [u8],
    header: &'a str,
}

/// Verifies `v1a` signatures with Python's `cryptography` (OpenSSL's ed25519), not with the
/// crate that signs them.
fn python_verifies(cases: &[V1aCase<'_>]) -> Vec<bool> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    use std::io::Write;
    const SCRIPT: &str = r#"
import base64, json, sys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
out = []
for c in json.load(sys.stdin):
    assert c["pk"].startswith("whpk_")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(c["pk"][5:]))
    msg = (c["id"] + "." + c["ts"] + ".").encode() + base64.b64decode(c["body"])
    ok = False
    for entry in c["header"].split():
        version, _, sig = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(sig), msg)
            ok = True
        except (InvalidSignature, ValueError):
            pass
    out.append(ok)
print(json.dumps(out))
"#;
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({"pk": c.public_key, "id": c.id, "ts": c.timestamp,
                   "body": STANDARD.encode(c.body), "header": c.header})
        })
        .collect();
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs (the v1a tests need python3 with the `cryptography` package)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(Value::Array(input).to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "python3 failed (is `cryptography` installed?)"
    );
    serde_json::from_slice(&out.stdout).expect("a JSON list of booleans")
}

#[test]
fn v1a_signatures_verify_with_an_independent_ed25519_implementation() {
    use hookrelay_shared::ed25519::SigningKey;
    let (k, other) = (SigningKey::generate(), SigningKey::generate());
    let (pk, other_pk) = (k.public_key(), other.public_key());
    let body = br#"{"id":"msg_1","type":"a.b","timestamp":"2026-12-01T00:00:00Z","data":{"x":"\u00e9"}}"#;
    let sig = k.sign("msg_1", 1_700_000_000, body);
    let both = format!(
        "v1,bm90IGEgc2ln {} {sig}",
        other.sign("msg_1", 1_700_000_000, body)
    );
    let got = python_verifies(&[
        V1aCase {
            public_key: &pk,
            id: "msg_1",
            timestamp: "1700000000",
            body,
            header: &sig,
        },
        V1aCase {
            public_key: &pk,
            id: "msg_1",
            timestamp: "1700000000",
            body,
            header: &both,
        },
        V1aCase {
            public_key: &other_pk,
            id: "msg_1",
            timestamp: "1700000000",
            body,
            header: &both,
        },
        V1aCase {
            public_key: &other_pk,
            id: "msg_1",
            timestamp: "1700000000",
            body,
            header: &sig,
        },
        V1aCase {
            public_key: &pk,
            id: "msg_1",
            timestamp: "1700000001",
            body,
            header: &sig,
        },
        V1aCase {
            public_key: &pk,
            id: "msg_2",
            timestamp: "1700000000",
            body,
            header: &sig,
        },
        V1aCase {
            public_key: &pk,
            id: "msg_1",
            timestamp: "1700000000",
            body: b"{}",
            header: &sig,
        },
    ]);
    assert_eq!(got, [true, true, true, false, false, false, false]);
}

/// Publishes events `{prefix}_{n}` until one arrives whose signature header satisfies `want`;
/// returns that request (a change reaches the dispatchers' caches through a NOTIFY, shortly).
async fn next_signed(
    env: &TestEnv,
    rx: &Receiver,
    prefix: &str,
    want: impl Fn(&str) -> bool,
) -> hookrelay_shared::testing::Received {
    for n in 0..100 {
        let id = format!("{prefix}_{n}");
        publish_events(env, &[(id.clone(), "order.paid", json!({"n": n}))]).await;
        let arrived = eventually(Duration::from_secs(10), || async {
            rx.received()
                .iter()
                .any(|r| r.header("webhook-id") == Some(id.as_str()))
        })
        .await;
        assert!(arrived, "{id} delivered");
        let got = rx
            .received()
            .into_iter()
            .find(|r| r.header("webhook-id") == Some(id.as_str()))
            .expect("received");
        if want(got.header("webhook-signature").unwrap_or_default()) {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no request of {prefix} had the expected signatures");
}

fn entries(header: &str, version: &str) -> usize {
    header
        .split_whitespace()
        .filter(|e| e.split(',').next() == Some(version))
        .count()
}

fn case<'a>(r: &'a hookrelay_shared::testing::Received, public_key: &'a str) -> V1aCase<'a> {
    V1aCase {
        public_key,
        id: r.header("webhook-id").unwrap_or_default(),
        timestamp: r.header("webhook-timestamp").unwrap_or_default(),
        body: &r.body,
        header: r.header("webhook-signature").unwrap_or_default(),
    }
}

#[tokio::test]
async fn v1a_signs_with_ed25519_and_rotates_within_and_across_schemes() {
    use hookrelay_shared::{
        signature,
        signing_keys::{Key, SignatureScheme},
    };
    let env = TestEnv::new().await;
    let rx = Receiver::start().await;
    let w = hook(&env, &rx.url("/"), |w| {
        w.signature_scheme = Some(SignatureScheme::V1a)
    })
    .await;
    let pk1 = w.public_key.clone().expect("a v1a webhook has a public key");
    assert!(pk1.starts_with("whpk_"));
    let child = dispatcher(&env);

    // v1a alone: one ed25519 entry, verified independently.
    let r = next_signed(&env, &rx, "evt_v1a", |h| {
        entries(h, "v1a") == 1 && entries(h, "v1") == 0
    })
    .await;
    assert_eq!(r.header("x-webhook-signature"), r.header("webhook-signature"));
    assert_eq!(python_verifies(&[case(&r, &pk1)]), [true]);

    // A rotation within v1a: both keys sign during the overlap.
    let keys = webhooks::rotate_secret_with(&env.db, w.id, None, time::Duration::hours(24))
        .await
        .expect("rotated")
        .expect("webhook exists");
    let pk2 = keys.signing_key.expect("a new signing key").public_key();
    assert_ne!(pk1, pk2);
    let got = webhooks::get(&env.db, w.id).await.expect("get").expect("webhook");
    assert_eq!(
        got.public_key.as_deref(),
        Some(pk2.as_str()),
        "the newest public key is shown"
    );
    let r = next_signed(&env, &rx, "evt_rot", |h| entries(h, "v1a") == 2).await;
    assert_eq!(python_verifies(&[case(&r, &pk1), case(&r, &pk2)]), [true, true]);

    // Across schemes: v1a -> v1 makes a whsec_ secret at once; the v1a keys sign on for 24 h.
    let patch = webhooks::WebhookPatch {
        signature_scheme: Some(SignatureScheme::V1),
        ..Default::default()
    };
    let (after, made) = webhooks::update_with_keys(&env.db, w.id, patch)
        .await
        .expect("patched")
        .expect("webhook");
    assert_eq!(after.signature_scheme, SignatureScheme::V1);
    let secret = made.secret.expect("v1 added: a new secret");
    let r = next_signed(&env, &rx, "evt_cross", |h| {
        entries(h, "v1") == 1 && entries(h, "v1a") == 2
    })
    .await;
    let header = r.header("webhook-signature").unwrap_or_default();
    let ts: i64 = r
        .header("webhook-timestamp")
        .unwrap_or_default()
        .parse()
        .expect("timestamp");
    let id = r.header("webhook-id").unwrap_or_default();
    assert!(
        signature::verify(&secret, id, ts, &r.body, header),
        "v1 verifies: {header}"
    );
    assert_eq!(
        python_verifies(&[case(&r, &pk2)]),
        [true],
        "v1a still verifies during the overlap"
    );
    let live: Vec<String> =
        sqlx::query_scalar("SELECT secret FROM webhook_secrets WHERE webhook_id = $1 AND expires_at IS NULL")
            .bind(w.id)
            .fetch_all(&env.db)
            .await
            .expect("keys");
    assert_eq!(
        live,
        [secret.expose()],
        "only the new secret is open-ended; the v1a keys expire"
    );

    // Expiring them at once (a rotation with a zero overlap) leaves v1 alone.
    let keys = webhooks::rotate_secret_with(
        &env.db,
        w.id,
        Some(Key::Hmac(signature::Secret::generate())),
        time::Duration::ZERO,
    )
    .await
    .expect("rotated")
    .expect("webhook");
    assert!(keys.signing_key.is_none() && keys.secret.is_some());
    let r = next_signed(&env, &rx, "evt_v1", |h| {
        entries(h, "v1") == 1 && entries(h, "v1a") == 0
    })
    .await;
    assert!(r.header("webhook-signature").is_some());
    assert_eq!(
        webhooks::get(&env.db, w.id)
            .await
            .expect("get")
            .expect("w")
            .public_key,
        None
    );
    kill(child);
    env.cleanup().await;
}
