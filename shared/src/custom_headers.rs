//! Custom request headers of a webhook (issue 13): validation, and the type that keeps the
//! values out of logs, API answers and stored attempts.

use serde_json::Value;

use crate::webhooks::{InvalidField, invalid};

/// Most custom headers on one webhook.
pub const MAX_HEADERS: usize = 32;
/// The longest custom header name and value, bytes.
pub const MAX_HEADER_NAME: usize = 256;
pub const MAX_HEADER_VALUE: usize = 4096;
/// What the API, the CLI and the stored attempts show instead of a custom header's value.
pub const REDACTED: &str = "***";

/// Names a webhook may not set: the signed headers of the contract, and those that would
/// break the request (framing, connection handling, the target host).
fn reserved(name: &str) -> bool {
    name.starts_with("webhook-")
        || name.starts_with("x-webhook-")
        || name.starts_with("proxy-")
        || matches!(
            name,
            "content-type"
                | "user-agent"
                | "host"
                | "content-length"
                | "transfer-encoding"
                | "connection"
                | "keep-alive"
                | "te"
                | "trailer"
                | "upgrade"
                | "expect"
        )
}

/// An RFC 9110 token character (what a header name is made of).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks custom headers: a JSON object of name to string value (`None` or `null`: none).
/// Names are case-insensitive; a refused one is named in the error as `headers.<name>`.
pub fn validate_headers(headers: Option<&Value>) -> Result<(), InvalidField> {
    let map = match headers {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(invalid("headers", "must be an object of header name to value"));
        }
    };
    if map.len() > MAX_HEADERS {
        return Err(invalid("headers", format!("at most {MAX_HEADERS} headers")));
    }
    let mut seen = std::collections::HashSet::new();
    for (name, value) in map {
        let shown: String = name.chars().take(64).collect();
        let bad = |reason: &str| invalid(format!("headers.{shown}"), reason);
        if name.is_empty() || name.len() > MAX_HEADER_NAME || !name.bytes().all(is_tchar) {
            return Err(bad(&format!(
                "not a header name (1-{MAX_HEADER_NAME} letters, digits and !#$%&'*+-.^_`|~)"
            )));
        }
        let lower = name.to_ascii_lowercase();
        if reserved(&lower) {
            return Err(bad(
                "this header is set by hookrelay (webhook-*, x-webhook-*, content-type, user-agent) \
                 or by HTTP itself (host, content-length, connection, ...) and can't be overridden",
            ));
        }
        if !seen.insert(lower) {
            return Err(bad("given twice (names are case-insensitive)"));
        }
        let Value::String(v) = value else {
            return Err(bad("the value must be a string"));
        };
        if v.len() > MAX_HEADER_VALUE
            || !v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
            || v.trim() != v
        {
            return Err(bad(&format!(
                "the value must be at most {MAX_HEADER_VALUE} printable ASCII characters, \
                 without leading or trailing spaces"
            )));
        }
        if v == REDACTED {
            return Err(bad(
                "`***` is how values are shown, not a value: send the real one",
            ));
        }
    }
    Ok(())
}

/// A webhook's custom headers, names lowercased. The values are secrets: `Debug` and
/// `Serialize` show only the names (values as [`REDACTED`]); [`CustomHeaders::expose`] is the
/// one way to the values, for the request itself.
#[derive(Clone, Default, PartialEq)]
pub struct CustomHeaders(Vec<(String, String)>);

impl CustomHeaders {
    /// From a validated (or stored) JSON object; entries that are not strings are skipped.
    pub fn from_json(v: &Value) -> Self {
        let Value::Object(m) = v else {
            return Self::default();
        };
        Self(
            m.iter()
                .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_owned())))
                .collect(),
        )
    }

    /// The JSON object stored in the database (with the values).
    pub fn to_stored_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    }

    /// The names and values, for building the request. Never log them.
    pub fn expose(&self) -> &[(String, String)] {
        &self.0
    }

    /// Whether `name` (lowercase) is one of them.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Names to [`REDACTED`]: what may be shown.
    pub fn redacted(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(k, _)| (k.clone(), Value::String(REDACTED.to_owned())))
                .collect(),
        )
    }
}

impl std::fmt::Debug for CustomHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, _)| (k, REDACTED)))
            .finish()
    }
}

impl serde::Serialize for CustomHeaders {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for CustomHeaders {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| Self::from_json(&v))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn refused(h: Value) -> InvalidField {
        validate_headers(Some(&h)).expect_err(&h.to_string())
    }

    #[test]
    fn ordinary_headers_are_accepted() {
        let h = json!({"X-Api-Key": "k_live_123", "authorization": "Bearer abc def", "x-tenant": "42"});
        assert_eq!(validate_headers(Some(&h)), Ok(()));
        assert_eq!(validate_headers(None), Ok(()));
        assert_eq!(validate_headers(Some(&Value::Null)), Ok(()));
        assert_eq!(validate_headers(Some(&json!({}))), Ok(()));
    }

    #[test]
    fn reserved_names_are_refused_naming_the_header() {
        for name in [
            "webhook-id",
            "Webhook-Signature",
            "webhook-anything",
            "x-webhook-event",
            "X-Webhook-Attempt",
            "content-type",
            "User-Agent",
            "host",
            "content-length",
            "transfer-encoding",
            "connection",
            "proxy-authorization",
        ] {
            let e = refused(json!({ name: "v" }));
            assert_eq!(e.field, format!("headers.{name}"), "{name}");
            assert!(e.reason.contains("can't be overridden"), "{e}");
        }
    }

    #[test]
    fn invalid_names_and_values_are_refused() {
        for (h, field) in [
            (json!({"": "v"}), "headers."),
            (json!({"bad name": "v"}), "headers.bad name"),
            (json!({"x-é": "v"}), "headers.x-é"),
            (json!({"x-a:b": "v"}), "headers.x-a:b"),
            (json!({"x-a": "line\r\nx-evil: 1"}), "headers.x-a"),
            (json!({"x-a": "tab\tok but nul\u{0}"}), "headers.x-a"),
            (json!({"x-a": "é"}), "headers.x-a"),
            (json!({"x-a": " padded"}), "headers.x-a"),
            (json!({"x-a": 5}), "headers.x-a"),
            (json!({"x-a": null}), "headers.x-a"),
            (json!({"x-a": "***"}), "headers.x-a"),
            (json!({"x-a": "x".repeat(MAX_HEADER_VALUE + 1)}), "headers.x-a"),
            (json!({"X-A": "1", "x-a": "2"}), "headers.x-a"),
            (json!(["x-a"]), "headers"),
            (json!("x-a: 1"), "headers"),
        ] {
            assert_eq!(refused(h.clone()).field, field, "{h}");
        }
        let many: serde_json::Map<String, Value> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), json!("v")))
            .collect();
        assert_eq!(refused(Value::Object(many)).field, "headers");
    }

    #[test]
    fn values_never_show_in_debug_or_serialized_form() {
        let h = CustomHeaders::from_json(&json!({"X-Api-Key": "s3cret"}));
        assert_eq!(h.expose(), [("x-api-key".to_owned(), "s3cret".to_owned())]);
        assert!(h.contains("x-api-key"));
        let debug = format!("{h:?}");
        assert!(
            !debug.contains("s3cret") && debug.contains("x-api-key"),
            "{debug}"
        );
        let shown = serde_json::to_string(&h).expect("serializes");
        assert_eq!(shown, r#"{"x-api-key":"***"}"#);
        assert_eq!(h.to_stored_json(), json!({"x-api-key": "s3cret"}));
        assert!(CustomHeaders::from_json(&json!("junk")).is_empty());
    }
}
