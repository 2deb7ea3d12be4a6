//! A webhook's signature scheme (`v1` HMAC, `v1a` ed25519, or both) and its signing keys.
//! Both kinds live in `webhook_secrets` (told apart by their `whsec_`/`whsk_` prefix) and share
//! the rotation rules: a rotation makes a new key of every kind the scheme names, and the
//! previous keys, of any kind, keep signing for the overlap. Every live key signs, so during an
//! overlap (a rotation, or a change of scheme) the header carries one space-separated entry
//! per key.

use serde::{Deserialize, Serialize};

use crate::{
    ed25519::{self, SigningKey},
    signature::{self, Secret},
};

/// Which signatures a webhook's requests carry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignatureScheme {
    /// HMAC-SHA256 with a `whsec_` secret (the default).
    #[default]
    #[serde(rename = "v1")]
    V1,
    /// ed25519 with a `whsk_` key; receivers verify with the `whpk_` public key.
    #[serde(rename = "v1a")]
    V1a,
    /// Both, space-separated.
    #[serde(rename = "v1,v1a")]
    Both,
}

/// The two kinds of key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Hmac,
    Ed25519,
}

impl KeyKind {
    /// The stored text's prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Hmac => "whsec_",
            Self::Ed25519 => ed25519::SECRET_PREFIX,
        }
    }
}

impl SignatureScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V1a => "v1a",
            Self::Both => "v1,v1a",
        }
    }

    /// Parses the stored or given text (`v1`, `v1a`, `v1,v1a`; `v1a,v1` too).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "v1" => Some(Self::V1),
            "v1a" => Some(Self::V1a),
            "v1,v1a" | "v1a,v1" => Some(Self::Both),
            _ => None,
        }
    }

    /// The kinds of key it signs with.
    pub fn kinds(self) -> &'static [KeyKind] {
        match self {
            Self::V1 => &[KeyKind::Hmac],
            Self::V1a => &[KeyKind::Ed25519],
            Self::Both => &[KeyKind::Hmac, KeyKind::Ed25519],
        }
    }

    pub fn uses(self, kind: KeyKind) -> bool {
        self.kinds().contains(&kind)
    }
}

/// A key of either kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Key {
    Hmac(Secret),
    Ed25519(SigningKey),
}

impl Key {
    /// A new random key of `kind`.
    pub fn generate(kind: KeyKind) -> Self {
        match kind {
            KeyKind::Hmac => Self::Hmac(Secret::generate()),
            KeyKind::Ed25519 => Self::Ed25519(SigningKey::generate()),
        }
    }

    /// Parses a stored key (any `whsec_` length).
    pub fn parse_stored(s: &str) -> Option<Self> {
        if s.starts_with(ed25519::SECRET_PREFIX) {
            SigningKey::parse(s).ok().map(Self::Ed25519)
        } else {
            Secret::parse(s).ok().map(Self::Hmac)
        }
    }

    /// Parses a key someone supplies (`secret` on create or rotate): a `whsec_` secret of at
    /// least 24 bytes or a `whsk_` signing key. The error is the reason, for the API.
    pub fn parse_given(s: &str) -> Result<Self, String> {
        if s.starts_with(ed25519::SECRET_PREFIX) {
            SigningKey::parse(s).map(Self::Ed25519).map_err(|e| e.to_string())
        } else {
            Secret::parse_strict(s).map(Self::Hmac).map_err(|e| e.to_string())
        }
    }

    pub fn kind(&self) -> KeyKind {
        match self {
            Self::Hmac(_) => KeyKind::Hmac,
            Self::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// The stored text form.
    pub fn expose(&self) -> String {
        match self {
            Self::Hmac(s) => s.expose(),
            Self::Ed25519(k) => k.expose(),
        }
    }
}

/// The live keys of a webhook, newest first within each kind: what the dispatcher signs with.
#[derive(Clone, Debug, Default)]
pub struct SigningKeys {
    pub hmac: Vec<Secret>,
    pub ed25519: Vec<SigningKey>,
}

impl SigningKeys {
    /// From stored key texts, newest first; unreadable ones are skipped.
    pub fn from_stored<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut keys = Self::default();
        for t in texts {
            match Key::parse_stored(t) {
                Some(Key::Hmac(s)) => keys.hmac.push(s),
                Some(Key::Ed25519(k)) => keys.ed25519.push(k),
                None => {}
            }
        }
        keys
    }

    /// The `webhook-signature` value: every `v1` entry, then every `v1a` entry, space-separated.
    pub fn sign_header(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut header = signature::sign_header(&self.hmac, id, timestamp, body);
        for k in &self.ed25519 {
            if !header.is_empty() {
                header.push(' ');
            }
            header.push_str(&k.sign(id, timestamp, body));
        }
        header
    }
}

/// The keys a create, rotation or change of scheme made: shown once in its answer (the
/// signing key's public half is shown on every read as `public_key`).
#[derive(Clone, Debug, Default)]
pub struct NewKeys {
    pub secret: Option<Secret>,
    pub signing_key: Option<SigningKey>,
}

impl NewKeys {
    pub fn push(&mut self, key: Key) {
        match key {
            Key::Hmac(s) => self.secret = Some(s),
            Key::Ed25519(k) => self.signing_key = Some(k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_parse_and_name_their_kinds() {
        for s in [SignatureScheme::V1, SignatureScheme::V1a, SignatureScheme::Both] {
            assert_eq!(SignatureScheme::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).expect("json");
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        assert_eq!(SignatureScheme::parse("v2"), None);
        assert!(SignatureScheme::Both.uses(KeyKind::Ed25519) && SignatureScheme::Both.uses(KeyKind::Hmac));
        assert!(!SignatureScheme::V1.uses(KeyKind::Ed25519));
        assert_eq!(SignatureScheme::default(), SignatureScheme::V1);
    }

    #[test]
    fn a_header_carries_one_entry_per_live_key_v1_first() {
        let (s1, s2, k1) = (Secret::generate(), Secret::generate(), SigningKey::generate());
        let keys = SigningKeys::from_stored(
            [s1.expose(), k1.expose(), s2.expose(), "junk".into()]
                .iter()
                .map(String::as_str),
        );
        assert_eq!((keys.hmac.len(), keys.ed25519.len()), (2, 1));
        let h = keys.sign_header("evt_1", 1_700_000_000, b"{}");
        let entries: Vec<&str> = h.split(' ').collect();
        assert_eq!(entries.len(), 3);
        assert!(
            entries[0].starts_with("v1,") && entries[1].starts_with("v1,") && entries[2].starts_with("v1a,")
        );
        assert!(signature::verify(&s2, "evt_1", 1_700_000_000, b"{}", &h));
        assert!(ed25519::verify(
            &k1.public_key(),
            "evt_1",
            1_700_000_000,
            b"{}",
            &h
        ));
        let only = SigningKeys::from_stored([k1.expose()].iter().map(String::as_str));
        assert!(
            only.sign_header("e", 1, b"").starts_with("v1a,"),
            "no leading space"
        );
    }

    #[test]
    fn given_keys_are_checked_by_kind() {
        assert_eq!(
            Key::parse_given(&SigningKey::generate().expose()).map(|k| k.kind()),
            Ok(KeyKind::Ed25519)
        );
        assert_eq!(
            Key::parse_given(&Secret::generate().expose()).map(|k| k.kind()),
            Ok(KeyKind::Hmac)
        );
        assert!(Key::parse_given("whsec_AAAA").is_err());
        assert!(Key::parse_given("whsk_AAAA").is_err());
        assert!(Key::parse_given("whpk_AAAA").is_err());
    }
}
