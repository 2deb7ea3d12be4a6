//! What a signature costs per request: `v1` (HMAC-SHA256) against `v1a` (ed25519) on a typical
//! 300-byte body. Run: `cargo run --release -p hookrelay-shared --example sign_cost`. Figures
//! are in docs/webhook-options.md.

use std::time::Instant;

use hookrelay_shared::signing_keys::{Key, KeyKind, SigningKeys};

fn per_request(keys: &SigningKeys, body: &[u8], rounds: u32) -> f64 {
    let started = Instant::now();
    let mut bytes = 0usize;
    for i in 0..rounds {
        bytes +=
            std::hint::black_box(keys.sign_header("evt_01JBENCH", 1_700_000_000 + i64::from(i), body)).len();
    }
    assert!(bytes > 0);
    started.elapsed().as_nanos() as f64 / f64::from(rounds)
}

fn main() {
    let body = format!(
        r#"{{"id":"evt_01JBENCH","type":"license.assigned","timestamp":"2026-12-01T10:00:00Z","data":{{"license_id":"lic_01J","note":"{}"}}}}"#,
        "x".repeat(180)
    );
    for (name, kinds) in [
        ("v1", vec![KeyKind::Hmac]),
        ("v1a", vec![KeyKind::Ed25519]),
        ("v1,v1a", vec![KeyKind::Hmac, KeyKind::Ed25519]),
    ] {
        let texts: Vec<String> = kinds.into_iter().map(|k| Key::generate(k).expose()).collect();
        let keys = SigningKeys::from_stored(texts.iter().map(String::as_str));
        let ns = per_request(&keys, body.as_bytes(), 20_000);
        println!(
            "{name}: {:.1} µs per request ({} byte body)",
            ns / 1000.0,
            body.len()
        );
    }
}
