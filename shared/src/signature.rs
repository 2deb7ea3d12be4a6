//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
//! one entry per active secret, space-separated. Both the signer and a verifier (for tests and
//! for receivers written in Rust).

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Bytes of randomness in a generated secret.
pub const SECRET_BYTES: usize = 32;
/// Fewest key bytes accepted for a secret someone supplies.
pub const MIN_SECRET_BYTES: usize = 24;

/// Why a secret or a signature header is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("a secret must be `whsec_` followed by base64")]
    BadSecretFormat,
    #[error("a secret must hold at least {MIN_SECRET_BYTES} bytes")]
    SecretTooShort,
}

/// A webhook signing secret. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// A new random secret.
    pub fn generate() -> Self {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut key);
        Self { key }
    }

    /// Parses `whsec_<base64>` (any key length; use [`Secret::parse_strict`] for user input).
    pub fn parse(s: &str) -> Result<Self, SignatureError> {
        let b64 = s.strip_prefix(PREFIX).ok_or(SignatureError::BadSecretFormat)?;
        let key = STANDARD
            .decode(b64)
            .map_err(|_| SignatureError::BadSecretFormat)?;
        if key.is_empty() {
            return Err(SignatureError::BadSecretFormat);
        }
        Ok(Self { key })
    }

    /// Parses a secret someone chose, requiring at least [`MIN_SECRET_BYTES`] bytes.
    pub fn parse_strict(s: &str) -> Result<Self, SignatureError> {
        let secret = Self::parse(s)?;
        if secret.key.len() < MIN_SECRET_BYTES {
            return Err(SignatureError::SecretTooShort);
        }
        Ok(secret)
    }

    /// The `whsec_…` text form.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// One `v1,<base64>` signature entry.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self.mac(id, timestamp, body).finalize().into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }
}

/// The `webhook-signature` header value: one entry per secret, space-separated.
pub fn sign_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether any `v1` entry of `header` is a valid signature of the message under `secret`.
/// Unknown versions and malformed entries are skipped; comparison is constant-time.
pub fn verify(secret: &Secret, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    header.split_whitespace().any(|entry| {
        let Some(b64) = entry.strip_prefix("v1,") else {
            return false;
        };
        let Ok(sig) = STANDARD.decode(b64) else {
            return false;
        };
        secret.mac(id, timestamp, body).verify_slice(&sig).is_ok()
    })
}

/// [`verify`], and also that `timestamp` is within `tolerance_secs` of `now` (replay defence).
/// Any `i64` is safe: the distance is computed without overflow, and a negative tolerance
/// accepts nothing.
pub fn verify_fresh(
    secret: &Secret,
    id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance_secs: i64,
) -> bool {
    u64::try_from(tolerance_secs).is_ok_and(|tolerance| now.abs_diff(timestamp) <= tolerance)
        && verify(secret, id, timestamp, body, header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Vector {
        secret: String,
        id: String,
        timestamp: i64,
        payload: String,
        signature: String,
    }
    #[derive(serde::Deserialize)]
    struct Vectors {
        valid: Vec<Vector>,
        invalid: Vec<Vector>,
    }

    fn vectors() -> Vectors {
        // Kept in the repo (copied from the kit's shared/vectors) so the crate tests stand alone.
        serde_json::from_str(include_str!("../tests/standard-webhooks.json")).expect("vectors parse")
    }

    #[test]
    fn every_valid_vector_verifies_and_signs_identically() {
        for v in vectors().valid {
            let secret = Secret::parse(&v.secret).expect("secret parses");
            assert!(verify(
                &secret,
                &v.id,
                v.timestamp,
                v.payload.as_bytes(),
                &v.signature
            ));
            assert_eq!(secret.sign(&v.id, v.timestamp, v.payload.as_bytes()), v.signature);
        }
    }

    #[test]
    fn every_invalid_vector_is_rejected_without_panic() {
        for v in vectors().invalid {
            let secret = Secret::parse(&v.secret).expect("secret parses");
            assert!(!verify(
                &secret,
                &v.id,
                v.timestamp,
                v.payload.as_bytes(),
                &v.signature
            ));
        }
    }

    #[test]
    fn a_rotation_header_verifies_under_either_secret() {
        let (old, new) = (Secret::generate(), Secret::generate());
        let header = sign_header(&[new.clone(), old.clone()], "evt_1", 1700000000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, "evt_1", 1700000000, b"{}", &header));
        assert!(verify(&new, "evt_1", 1700000000, b"{}", &header));
        assert!(!verify(&Secret::generate(), "evt_1", 1700000000, b"{}", &header));
    }

    #[test]
    fn secrets_round_trip_and_short_ones_are_refused() {
        let s = Secret::generate();
        assert_eq!(Secret::parse(&s.expose()).expect("parses"), s);
        assert_eq!(
            Secret::parse_strict("whsec_AAAA"),
            Err(SignatureError::SecretTooShort)
        );
        assert_eq!(Secret::parse("nope"), Err(SignatureError::BadSecretFormat));
        assert_eq!(Secret::parse("whsec_%%%"), Err(SignatureError::BadSecretFormat));
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn stale_timestamps_fail_the_fresh_check() {
        let s = Secret::generate();
        let h = s.sign("a", 1000, b"x");
        assert!(verify_fresh(&s, "a", 1000, b"x", &h, 1100, 300));
        assert!(!verify_fresh(&s, "a", 1000, b"x", &h, 2000, 300));
        assert!(
            verify_fresh(&s, "a", 1000, b"x", &h, 700, 300),
            "300 s early is fresh"
        );
        assert!(!verify_fresh(&s, "a", 1000, b"x", &h, 699, 300));
    }

    #[test]
    fn extreme_timestamps_are_stale_not_a_panic() {
        let s = Secret::generate();
        for (ts, now) in [
            (i64::MIN, 1_700_000_000),
            (i64::MIN, i64::MAX),
            (i64::MAX, i64::MIN),
            (i64::MAX, 0),
        ] {
            let h = s.sign("a", ts, b"x");
            assert!(verify(&s, "a", ts, b"x", &h), "the signature itself is fine");
            assert!(!verify_fresh(&s, "a", ts, b"x", &h, now, 300), "{ts} at {now}");
            assert!(
                !verify_fresh(&s, "a", ts, b"x", &h, now, i64::MAX - 1),
                "{ts} at {now}"
            );
        }
        let h = s.sign("a", i64::MIN, b"x");
        assert!(verify_fresh(&s, "a", i64::MIN, b"x", &h, i64::MIN, 0));
        assert!(!verify_fresh(&s, "a", i64::MIN, b"x", &h, i64::MAX, i64::MAX));
        let h = s.sign("a", 1000, b"x");
        assert!(
            !verify_fresh(&s, "a", 1000, b"x", &h, 1000, -1),
            "a negative tolerance accepts nothing"
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            /// Freshness is `|now - timestamp| <= tolerance` computed exactly, for every i64.
            #[test]
            fn freshness_is_exact_and_never_panics(ts in any::<i64>(), now in any::<i64>(), tol in any::<i64>()) {
                let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
                let h = s.sign("msg_1", ts, b"{}");
                let want = (i128::from(now) - i128::from(ts)).abs() <= i128::from(tol);
                prop_assert_eq!(verify_fresh(&s, "msg_1", ts, b"{}", &h, now, tol), want);
            }

            /// Verification takes any header, id and body without panic, and a signature made
            /// by [`Secret::sign`] always verifies (also with junk entries around it).
            #[test]
            fn any_header_is_handled_and_own_signatures_verify(
                header in any::<String>(),
                id in any::<String>(),
                ts in any::<i64>(),
                body in prop::collection::vec(any::<u8>(), 0..256),
                junk in "[ -~]{0,40}",
            ) {
                let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret");
                let _ = verify(&s, &id, ts, &body, &header);
                let own = s.sign(&id, ts, &body);
                prop_assert!(verify(&s, &id, ts, &body, &own));
                let mixed = format!("{junk} {own} v1,{junk}");
                prop_assert!(verify(&s, &id, ts, &body, &mixed));
            }

            /// Any text is either refused as a secret or round-trips through `expose`.
            #[test]
            fn secrets_parse_or_refuse_and_round_trip(text in any::<String>(), key in prop::collection::vec(any::<u8>(), 1..64)) {
                if let Ok(s) = Secret::parse(&text) {
                    prop_assert_eq!(Secret::parse(&s.expose()), Ok(s));
                }
                let _ = Secret::parse_strict(&text);
                let s = Secret::parse(&format!("whsec_{}", STANDARD.encode(&key))).expect("valid");
                prop_assert_eq!(Secret::parse(&s.expose()), Ok(s));
            }
        }
    }
}
