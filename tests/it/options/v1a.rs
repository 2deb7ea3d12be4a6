//! `v1a` (ed25519) signatures through the real dispatcher, checked by an independent ed25519
//! implementation (Python's `cryptography`), and key rotation within and across schemes.

use super::*;

/// One `v1a` check for the independent verifier: does any `v1a` entry of `header` verify
/// under `public_key` (`whpk_…`) for `{id}.{timestamp}.{body}`?
#[derive(Clone, Copy)]
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
    let base = V1aCase {
        public_key: &pk,
        id: "msg_1",
        timestamp: "1700000000",
        body,
        header: &sig,
    };
    let got = python_verifies(&[
        base,
        V1aCase {
            header: &both,
            ..base
        },
        V1aCase {
            public_key: &other_pk,
            header: &both,
            ..base
        },
        V1aCase {
            public_key: &other_pk,
            ..base
        },
        V1aCase {
            timestamp: "1700000001",
            ..base
        },
        V1aCase { id: "msg_2", ..base },
        V1aCase { body: b"{}", ..base },
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
    assert!(r.signed_with(&secret), "v1 verifies: {header}");
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
