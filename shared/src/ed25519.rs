//! Standard Webhooks asymmetric signatures (`v1a`): ed25519 over `{id}.{timestamp}.{body}`,
//! sent as `v1a,<base64 signature>`. Keys as the spec writes them: the signing key
//! `whsk_<base64 of seed ‖ public key, 64 bytes>` (a 32-byte seed alone is accepted too) stays
//! with hookrelay; the public key `whpk_<base64 of 32 bytes>` is what receivers verify with.
//!
//! Signing uses aws-lc-rs, already in the build as rustls' crypto provider. The tests check the
//! signatures with an independent implementation (Python's `cryptography`, on OpenSSL).

use std::sync::Arc;

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use base64::{Engine, engine::general_purpose::STANDARD};
use rand::RngCore;

pub const SECRET_PREFIX: &str = "whsk_";
pub const PUBLIC_PREFIX: &str = "whpk_";
const SEED_LEN: usize = 32;
const PUBLIC_LEN: usize = 32;

/// Why a `whsk_` or `whpk_` key is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "a signing key must be `whsk_` followed by base64 of 64 bytes (seed and public key) or of a 32-byte seed"
    )]
    BadSigningKey,
    #[error("the public half of this `whsk_` key does not belong to its seed")]
    Inconsistent,
    #[error("a public key must be `whpk_` followed by base64 of 32 bytes")]
    BadPublicKey,
}

/// An ed25519 signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey {
    seed: [u8; SEED_LEN],
    pair: Arc<Ed25519KeyPair>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public_key())
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.seed == other.seed
    }
}

impl SigningKey {
    /// A new random key.
    pub fn generate() -> Self {
        loop {
            let mut seed = [0u8; SEED_LEN];
            rand::rng().fill_bytes(&mut seed);
            // Any 32 bytes are a valid seed; the loop only satisfies the types.
            if let Some(k) = Self::from_seed(seed) {
                return k;
            }
        }
    }

    fn from_seed(seed: [u8; SEED_LEN]) -> Option<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).ok()?;
        Some(Self {
            seed,
            pair: Arc::new(pair),
        })
    }

    /// Parses `whsk_<base64>`: 64 bytes (seed, then the public key, which must match) or a
    /// 32-byte seed.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).ok_or(KeyError::BadSigningKey)?;
        let bytes = STANDARD.decode(b64).map_err(|_| KeyError::BadSigningKey)?;
        let (seed, public) = match bytes.len() {
            SEED_LEN => (&bytes[..], None),
            64 => (&bytes[..SEED_LEN], Some(&bytes[SEED_LEN..])),
            _ => return Err(KeyError::BadSigningKey),
        };
        let seed: [u8; SEED_LEN] = seed.try_into().map_err(|_| KeyError::BadSigningKey)?;
        let key = Self::from_seed(seed).ok_or(KeyError::BadSigningKey)?;
        if public.is_some_and(|p| p != key.public_bytes()) {
            return Err(KeyError::Inconsistent);
        }
        Ok(key)
    }

    fn public_bytes(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The `whsk_…` text form (64 bytes: seed ‖ public key, as libsodium and Svix write it).
    pub fn expose(&self) -> String {
        let mut bytes = self.seed.to_vec();
        bytes.extend_from_slice(self.public_bytes());
        format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
    }

    /// The `whpk_…` public key receivers verify with.
    pub fn public_key(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", STANDARD.encode(self.public_bytes()))
    }

    /// One `v1a,<base64>` signature entry.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let msg = signed_content(id, timestamp, body);
        format!("v1a,{}", STANDARD.encode(self.pair.sign(&msg).as_ref()))
    }
}

fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let ts = timestamp.to_string();
    let mut msg = Vec::with_capacity(id.len() + ts.len() + body.len() + 2);
    msg.extend_from_slice(id.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(ts.as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    msg
}

/// The public key bytes of a `whpk_…` key.
pub fn parse_public_key(s: &str) -> Result<[u8; PUBLIC_LEN], KeyError> {
    let b64 = s.strip_prefix(PUBLIC_PREFIX).ok_or(KeyError::BadPublicKey)?;
    let bytes = STANDARD.decode(b64).map_err(|_| KeyError::BadPublicKey)?;
    bytes.try_into().map_err(|_| KeyError::BadPublicKey)
}

/// Whether any `v1a` entry of `header` is a valid signature of the message under `public_key`
/// (`whpk_…`). Other versions and malformed entries are skipped. For receivers written in Rust.
pub fn verify(public_key: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Ok(pk) = parse_public_key(public_key) else {
        return false;
    };
    let key = UnparsedPublicKey::new(&ED25519, pk);
    let msg = signed_content(id, timestamp, body);
    header.split_whitespace().any(|entry| {
        entry
            .strip_prefix("v1a,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|sig| key.verify(&msg, &sig).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sign_verifiably() {
        let k = SigningKey::generate();
        let text = k.expose();
        assert!(text.starts_with("whsk_"));
        assert_eq!(STANDARD.decode(&text[5..]).map(|b| b.len()), Ok(64));
        let back = SigningKey::parse(&text).expect("parses");
        assert_eq!(back, k);
        assert_eq!(back.public_key(), k.public_key());
        let seed_only = format!("whsk_{}", STANDARD.encode(k.seed));
        assert_eq!(SigningKey::parse(&seed_only).expect("seed"), k);
        let sig = k.sign("msg_1", 1_700_000_000, b"{}");
        assert!(sig.starts_with("v1a,"));
        assert!(verify(&k.public_key(), "msg_1", 1_700_000_000, b"{}", &sig));
        assert!(!verify(&k.public_key(), "msg_1", 1_700_000_001, b"{}", &sig));
        let other = SigningKey::generate();
        assert!(!verify(&other.public_key(), "msg_1", 1_700_000_000, b"{}", &sig));
        let both = format!("v1,abc {} {sig}", other.sign("msg_1", 1_700_000_000, b"{}"));
        assert!(verify(&k.public_key(), "msg_1", 1_700_000_000, b"{}", &both));
        assert!(!format!("{k:?}").contains(&text[5..20]), "Debug hides the key");
    }

    #[test]
    fn bad_keys_are_refused_not_a_panic() {
        let k = SigningKey::generate();
        let other = SigningKey::generate();
        let mut mixed = k.seed.to_vec();
        mixed.extend_from_slice(other.public_bytes());
        let mixed = format!("whsk_{}", STANDARD.encode(mixed));
        assert_eq!(SigningKey::parse(&mixed), Err(KeyError::Inconsistent));
        for bad in ["", "whsk_", "whsk_%%", "whsec_AAAA", "whsk_AAAA", &k.public_key()] {
            assert!(SigningKey::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_public_key("whpk_AAAA").is_err());
        assert!(!verify("whpk_AAAA", "a", 1, b"", "v1a,AAAA"));
        assert!(!verify(&k.public_key(), "a", 1, b"", "v1a,%%% v1a, v1a,AAAA"));
    }
}
